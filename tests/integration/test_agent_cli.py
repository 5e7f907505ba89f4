"""``dialer agent-demo`` and ``dialer call --flow F --json`` with a stream step, as real processes.

The reference agent requires a bearer token; the flow names the variable
(``token_env``) and the dialer's environment holds it. The JSON output's
stream entry carries result, disposition and agent_result, and the token
appears in no output of either process.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.sipp import DEFAULT_KEYS, SippPeer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "13900002222"  # fictional
Sipp = Callable[..., SippPeer]


def env_with(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DIALER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture
def agent_demo(tmp_path: Path, token: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from shared.cli import main; main()", "agent-demo", "--port", "0", "--tone", "800",
         "--listen", "1", "--token-env", "DEMO_AGENT_TOKEN"],
        cwd=tmp_path, env=env_with(DEMO_AGENT_TOKEN=token), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "reference agent listening on ws://127.0.0.1:PORT/agent (...)"
    assert "listening on ws://127.0.0.1:" in line, line
    port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
    yield port, proc
    proc.terminate()
    proc.wait(10)


def test_call_json_carries_the_agents_result(sipp_uas: Sipp, tmp_path: Path, token: str,
                                             agent_demo: tuple[int, subprocess.Popen[str]]) -> None:
    """The stream entry says hangup / interested with the agent's object; the bearer token is printed nowhere."""
    port, demo = agent_demo
    flow = tmp_path / "agent.toml"
    flow.write_text(f'start = "agent"\n[steps.agent]\nstream = {{ url = "ws://127.0.0.1:{port}/agent", '
                    'token_env = "AGENT_TOKEN" }\n', encoding="utf-8")
    peer = sipp_uas("carrier")
    done = subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", "call", NUMBER, "--flow", str(flow), "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env=env_with(DIALER_SIP_REGISTRAR=peer.address, DIALER_SIP_USERNAME=DEFAULT_KEYS["username"],
                     DIALER_SIP_PASSWORD=DEFAULT_KEYS["password"], DIALER_DATA_DIR=str(tmp_path / "data"),
                     AGENT_TOKEN=token))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [entry] = report["flow"]
    assert (entry["action"], entry["result"], entry["disposition"]) == ("stream", "hangup", "interested")
    assert entry["agent_result"]["disposition"] == "interested"
    demo.terminate()
    _, demo_err = demo.communicate(timeout=10)
    assert token not in done.stdout + done.stderr + demo_err
