"""The worker's /healthz verdict: every child registered and consuming, judged from files they keep."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.private_services import free_port
from worker.health import HealthFile, aggregate, serve

READY = {"registered": True, "gate_open": True, "ready": True}


def write(folder: Path, index: int, pid: int, **facts: object) -> None:
    (folder / f"{index}.json").write_text(json.dumps({"pid": pid, **facts}))


def test_healthy_only_when_every_child_is_registered_and_consuming(tmp_path: Path) -> None:
    write(tmp_path, 0, 100, **READY)
    write(tmp_path, 1, 101, **{**READY, "gate_open": False})
    healthy, body = aggregate(tmp_path, {0: 100, 1: 101})
    assert not healthy
    assert body["workers"]["0"]["state"] == "registered and consuming"
    assert body["workers"]["1"]["state"] == "not consuming (gate closed)"
    write(tmp_path, 1, 101, **READY)
    assert aggregate(tmp_path, {0: 100, 1: 101})[0]


def test_a_file_left_by_a_dead_child_or_a_child_being_restarted_does_not_count(tmp_path: Path) -> None:
    """The replacement (pid 102) has not written yet: the old pid's 'ready' file says nothing about it."""
    write(tmp_path, 0, 100, **READY)
    healthy, body = aggregate(tmp_path, {0: 102})
    assert not healthy and body["workers"]["0"]["state"] == "starting"
    healthy, body = aggregate(tmp_path, {0: None})
    assert not healthy and body["workers"]["0"]["state"] == "restarting"


def test_not_registered_and_not_yet_consuming_are_told_apart(tmp_path: Path) -> None:
    write(tmp_path, 0, 100, registered=False, gate_open=True, ready=True)
    write(tmp_path, 1, 101, registered=True, gate_open=True, ready=False)
    _, body = aggregate(tmp_path, {0: 100, 1: 101})
    assert [body["workers"][i]["state"] for i in ("0", "1")] == ["not registered", "not consuming yet"]


def test_no_children_is_not_healthy(tmp_path: Path) -> None:
    assert not aggregate(tmp_path, {})[0]


def test_health_file_is_rewritten_whole_on_each_change(tmp_path: Path) -> None:
    state = HealthFile(tmp_path / "0.json")
    state.update(trunk="default", registered=True, gate_open=True)
    state.update(ready=True)
    assert json.loads((tmp_path / "0.json").read_text()) == {
        "pid": os.getpid(), "trunk": "default", "registered": True, "gate_open": True, "ready": True}
    assert list(tmp_path.iterdir()) == [tmp_path / "0.json"]  # no temporary file left behind


def test_the_endpoint_answers_503_with_the_reason_then_200(tmp_path: Path) -> None:
    """/healthz over HTTP, as the compose health check calls it; /metrics on the same port."""
    port = free_port()
    server = serve(port, "127.0.0.1", tmp_path, lambda: {0: 100})
    try:
        write(tmp_path, 0, 100, registered=False, gate_open=True, ready=True)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert json.loads(exc.read())["workers"]["0"]["state"] == "not registered"
            exc.close()
        write(tmp_path, 0, 100, **READY)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200 and json.loads(response.read())["healthy"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_updates_leave_the_file_with_the_latest_facts(tmp_path: Path) -> None:
    """The SIP thread (registered) and the gate thread (gate_open) write at once: neither change is lost."""
    import threading

    state = HealthFile(tmp_path / "0.json")
    start = threading.Barrier(2)

    def flip(key: str) -> None:
        start.wait()
        for i in range(200):
            state.update(**{key: i % 2 == 0})
        state.update(**{key: True})

    threads = [threading.Thread(target=flip, args=(k,)) for k in ("registered", "gate_open")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_disk = json.loads((tmp_path / "0.json").read_text())
    assert (on_disk["registered"], on_disk["gate_open"]) == (True, True)
