"""How many calls a process holds, how fast it starts them, how many processes a host runs.

Pure rules over :class:`~worker.sip.engine.EngineInfo` and the settings, plus
the one I/O step they imply (raising ``RLIMIT_NOFILE``). Why here and not in
the settings: the right numbers depend on the engine the worker loads (4 calls
on a select() ioqueue with the PyPI wheel, 512 on epoll with the built one),
which only the worker side can import; the dispatcher and the API never load
pjsua2.

Sizing a host: the trunk's ``max_concurrent`` calls spread over processes of
``calls`` each. With the wheel that takes many processes (each registers the
account, so a PBX sees one contact per process); with the built engine one or
two per core hold all of them.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import Settings
from worker.sip.engine import DESCRIPTORS_BASE, DESCRIPTORS_PER_CALL, EngineInfo

# With one blocked Celery thread per call (worker/process.py), a process is kept to this many calls
# by default: each thread costs ~8 MB of address space and competes for the GIL with the SIP thread
# that serves media every 20 ms. DIALER_CALLS_PER_PROCESS raises it up to the engine's maximum.
THREADED_DEFAULT_CALLS = 128
PROCESSES_PER_CORE = {"wheel": 8, "built": 2}
# Postgres connections per process: a call holds none while it rings or talks (claim and record
# are a few ms each), so a small fixed pool serves hundreds of calls, and a host of a few
# processes stays far below Postgres's max_connections (100 by default).
DB_CONNECTIONS_PER_PROCESS = 16


@dataclass(frozen=True)
class ProcessLimits:
    """One worker process's ceiling: concurrent calls and call starts per second."""

    calls: int
    starts_per_s: float

    @property
    def db_connections(self) -> int:
        """The size of the process's Postgres pool: one per call with the wheel's 4, at most 16."""
        return min(self.calls + 1, DB_CONNECTIONS_PER_PROCESS)

    @property
    def descriptors(self) -> int:
        """Open files the process needs: about 3 per call (RTP, RTCP, a share of SIP) plus a base."""
        return DESCRIPTORS_BASE + DESCRIPTORS_PER_CALL * self.calls


def process_limits(engine: EngineInfo, calls: int | None, starts_per_s: float | None) -> ProcessLimits:
    """The limits a process runs with: the settings where given, else the engine's defaults.

    A setting above what the engine can do is refused with one message that
    names the variable, the engine and the way out, instead of pjsua clamping
    it silently (calls) or aborting the process (pace).
    """
    most = engine.usable_calls
    if calls is None:
        calls = min(most, THREADED_DEFAULT_CALLS)
    elif calls > most:
        raise ConfigError(
            f"DIALER_CALLS_PER_PROCESS={calls}: the {engine.kind} engine loaded here ({engine.path}) holds at most"
            f" {most} calls per process; lower it, or install the high-capacity engine (bash scripts/build-engine)"
        )
    if starts_per_s is None:
        starts_per_s = engine.default_starts_per_s
    elif starts_per_s > engine.max_starts_per_s:
        raise ConfigError(
            f"DIALER_CALL_STARTS_PER_S={starts_per_s:g}: above {engine.max_starts_per_s:g}/s the {engine.ioqueue}"
            f" ioqueue of the {engine.kind} engine runs out of handles and the process aborts; lower it"
        )
    return ProcessLimits(calls=calls, starts_per_s=starts_per_s)


def plan_processes(engine: EngineInfo, limits: ProcessLimits, *, max_concurrent: int, requested: int | None,
                   cores: int) -> int:
    """Processes for this host: as asked, else enough for the trunk's concurrent calls, at most a few per core."""
    if requested is not None:
        return requested
    needed = math.ceil(max_concurrent / limits.calls)
    return max(1, min(needed, PROCESSES_PER_CORE[engine.kind] * max(1, cores)))


def ensure_descriptors(limits: ProcessLimits) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to what ``limits`` needs; children inherit it.

    Returns the soft limit now in force. Fails with a message saying what to
    change when the hard limit is too low (only root may raise that).
    """
    need = limits.descriptors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ConfigError(
            f"{limits.calls} calls per process need about {need} open files, but this host allows {hard}"
            f" (ulimit -Hn): raise the hard limit (docker: ulimits nofile; systemd: LimitNOFILE) or lower"
            f" DIALER_CALLS_PER_PROCESS to {max(1, (hard - DESCRIPTORS_BASE) // DESCRIPTORS_PER_CALL)}"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_limits(settings: Settings) -> ProcessLimits:
    """This process's limits from the settings and the engine it loaded (imports pjsua2)."""
    from worker.sip.engine import loaded

    return process_limits(loaded(), settings.calls_per_process, settings.call_starts_per_s)
