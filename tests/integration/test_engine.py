"""The worker reads its limits from the pjsua2 engine it loaded: the PyPI wheel or the built one.

Each engine is loaded in a child process with its own PYTHONPATH (one
Endpoint, and one ``pjsua2``, per process), so both are checked in one run.
The SIP test at the end runs in this process and needs the built engine loaded
here, which is how ``scripts/test`` runs the SIP suites.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.errors import ConfigError
from tests.support.engine import ROOT, built_engine_dir, built_env, wheel_env
from tests.support.needs import unavailable
from tests.support.sipp import SippPeer, overlapping_dialogs
from worker.sip import CallResult, SipAccountConfig, SipAgent
from worker.sip.engine import loaded

pytestmark = pytest.mark.integration


def dialer_engine(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "engine", "--json"], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True, timeout=60)
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_engine_dir(tmp_path_factory.mktemp("engine"))


def test_dialer_engine_reports_the_pypi_wheel() -> None:
    """Without the built engine on the path, `dialer engine --json` names the wheel and its compiled defaults."""
    info = dialer_engine(wheel_env())
    assert {k: info[k] for k in ("kind", "max_calls", "ioqueue", "max_handles")} == {
        "kind": "wheel", "max_calls": 4, "ioqueue": "select", "max_handles": 64}
    assert "site-packages" in str(info["path"])


def test_dialer_engine_reports_the_built_engine(engine_dir: Path) -> None:
    """With the built engine first on the path, `dialer engine --json` reads 512 calls on epoll with 4096 handles."""
    info = dialer_engine(built_env(engine_dir))
    assert {k: info[k] for k in ("kind", "max_calls", "ioqueue", "max_handles")} == {
        "kind": "built", "max_calls": 512, "ioqueue": "epoll", "max_handles": 4096}
    major, minor = (int(p) for p in str(info["pjsip_version"]).split(".")[:2])
    assert (major, minor) >= (2, 14)
    assert Path(str(info["path"])).resolve().is_relative_to(engine_dir.resolve())


def test_worker_limits_default_from_the_engine(engine_dir: Path) -> None:
    """Unset DIALER_CALLS_PER_PROCESS / _CALL_STARTS_PER_S take the engine's values; too many calls is refused."""
    script = (
        "import json; from shared.settings import load_settings; from worker.sip.capacity import worker_limits;"
        "l = worker_limits(load_settings()); print(json.dumps([l.calls, l.starts_per_s]))"
    )
    results = {}
    for name, env in (("wheel", wheel_env()), ("built", built_env(engine_dir))):
        env = {k: v for k, v in env.items() if k not in ("DIALER_CALLS_PER_PROCESS", "DIALER_CALL_STARTS_PER_S")}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                              check=True, timeout=60)
        results[name] = json.loads(done.stdout)
        env["DIALER_CALLS_PER_PROCESS"] = "600"
        refused = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                                 check=False, timeout=60)
        assert refused.returncode != 0 and "DIALER_CALLS_PER_PROCESS=600" in refused.stderr
    assert results["wheel"] == [4, 40.0]
    assert results["built"][0] > 4 and results["built"][1] > 40.0


def test_an_agent_refuses_more_calls_than_the_loaded_engine_holds() -> None:
    """max_calls above the engine's capacity is a ConfigError naming the engine, not a silent clamp."""
    account = SipAccountConfig(registrar="127.0.0.1:5060", username="u", password="p", register=False)
    with pytest.raises(ConfigError, match=loaded().kind):
        SipAgent(account, max_calls=loaded().usable_calls + 1)


def test_built_engine_holds_many_calls_in_one_process(sipp_uas: Callable[..., SippPeer]) -> None:
    """Under the built engine one agent holds 40 answered calls at once (the wheel stops at 4), each ended by BYE."""
    if loaded().kind != "built":
        unavailable("needs the built engine loaded in this process (scripts/test runs the SIP suites so)")
    peer = sipp_uas("answer_fast")
    account = SipAccountConfig(registrar=peer.address, username="u", password="p", register=False)
    agent = SipAgent(account, max_calls=40, max_call_starts_per_s=100)
    agent.start()
    try:
        futures = [agent.place_call(agent.uri_for(f"+86139000030{i:02d}"), hold_s=3) for i in range(40)]
        results: list[CallResult] = [f.result(timeout=60) for f in futures]
    finally:
        agent.stop(grace_s=5)
    assert [(r.answered, r.hangup_by, r.error) for r in results] == [(True, "local", None)] * 40
    assert min(r.talk_s for r in results) > 0  # media came up: the bridge resamples 8 kHz PCMU to its clock
    dialogs = peer.dialogs()
    assert len(dialogs) == 40 and overlapping_dialogs(dialogs) == []
    most_at_once = max(sum(1 for d in dialogs if d.started_at <= e.started_at < d.ended_at) for e in dialogs)
    assert most_at_once > 4
