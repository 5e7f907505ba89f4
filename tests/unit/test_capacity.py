"""Sizing rules: calls and pace per process from the engine, processes per host, open-file limits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.errors import ConfigError
from tests.support.engine import ROOT
from worker.sip.capacity import ProcessLimits, plan_processes, process_limits
from worker.sip.engine import EngineInfo

WHEEL = EngineInfo("wheel", "2.15.1", 4, "select", 64, "/site-packages/pjsua2/_pjsua2.so")
BUILT = EngineInfo("built", "2.17", 512, "epoll", 4096, "/opt/engine/_pjsua2.so")


def test_unset_limits_come_from_the_engine() -> None:
    """The wheel gives 4 calls at 40 starts/s; the built engine more of both (capped for the threaded model)."""
    assert process_limits(WHEEL, None, None) == ProcessLimits(4, 40.0)
    built = process_limits(BUILT, None, None)
    assert 4 < built.calls <= 512 and built.starts_per_s > 40.0


def test_explicit_limits_within_the_engine_are_kept() -> None:
    """A setting the engine can hold is used as given, up to the compiled maximum."""
    assert process_limits(BUILT, 512, 100.0) == ProcessLimits(512, 100.0)
    assert process_limits(WHEEL, 2, 10.0) == ProcessLimits(2, 10.0)


def test_too_many_calls_for_the_engine_is_one_clear_error() -> None:
    """Asking the wheel for 5 calls names the variable, the engine, and how to get the bigger one."""
    with pytest.raises(ConfigError) as caught:
        process_limits(WHEEL, 5, None)
    message = str(caught.value)
    assert "DIALER_CALLS_PER_PROCESS=5" in message and "wheel" in message and "scripts/build-engine" in message


def test_a_pace_the_ioqueue_cannot_hold_is_refused() -> None:
    """Above the select() ioqueue's ceiling the process would abort: refused at start instead."""
    with pytest.raises(ConfigError, match="DIALER_CALL_STARTS_PER_S=200"):
        process_limits(WHEEL, None, 200.0)
    assert process_limits(BUILT, None, 200.0).starts_per_s == 200.0


def test_few_select_handles_bound_the_usable_calls() -> None:
    """An engine with many call slots but few ioqueue handles is sized by the handles (3 per call)."""
    narrow = EngineInfo("built", "2.17", 512, "select", 64, "/x/_pjsua2.so")
    assert narrow.usable_calls == 16


def test_processes_cover_the_trunk_with_few_per_core() -> None:
    """Processes: enough for the trunk's concurrent calls; the built engine needs one or two per core."""
    assert plan_processes(WHEEL, ProcessLimits(4, 40), max_concurrent=200, requested=None, cores=2) == 16
    assert plan_processes(WHEEL, ProcessLimits(4, 40), max_concurrent=8, requested=None, cores=2) == 2
    assert plan_processes(BUILT, ProcessLimits(128, 150), max_concurrent=200, requested=None, cores=2) == 2
    assert plan_processes(BUILT, ProcessLimits(512, 150), max_concurrent=8, requested=None, cores=2) == 1
    assert plan_processes(BUILT, ProcessLimits(512, 150), max_concurrent=8, requested=3, cores=2) == 3


def test_descriptor_limit_is_raised_or_refused_with_the_way_out() -> None:
    """~3 open files per call: the soft limit is raised to that; a hard limit below it is a clear error."""
    script = """
import resource
from shared.errors import ConfigError
from worker.sip.capacity import ProcessLimits, ensure_descriptors
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 1000))
print(ensure_descriptors(ProcessLimits(100, 100)), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
try:
    ensure_descriptors(ProcessLimits(512, 100))
except ConfigError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True,
                          timeout=60)
    raised, refused = done.stdout.splitlines()
    assert raised == "556 556"
    assert "this host allows 1000" in refused
    assert "DIALER_CALLS_PER_PROCESS to 248" in refused


def test_the_postgres_pool_stays_small_whatever_the_calls() -> None:
    """A call holds no connection while it rings or talks: 4 calls get 5, 128 or 512 calls get 16."""
    assert [ProcessLimits(c, 40).db_connections for c in (4, 128, 512)] == [5, 16, 16]
