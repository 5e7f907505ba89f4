"""When a finished call's outcome stops waiting for Postgres (worker/job_runner.py): never during a run,
within seconds once the process is shutting down."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from worker import job_runner


@pytest.fixture(autouse=True)
def _fresh_shutdown_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(job_runner, "STOPPING", job_runner.threading.Event())
    monkeypatch.setattr(job_runner, "_stopping_since", [])
    monkeypatch.setattr(job_runner, "STOP_PATIENCE_S", 0.2)
    yield


def flaky(failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def record() -> bool:
        calls.append(1)
        if len(calls) <= failures:
            raise psycopg.OperationalError("connection refused")
        return True
    return calls, record


def test_postgres_back_within_the_patience_is_written_not_spooled() -> None:
    calls, record = flaky(2)
    assert job_runner._record_or_spool(record) is True  # type: ignore[arg-type]
    assert len(calls) == 3


def test_a_shutting_down_process_spools_instead_of_waiting_out_the_kill() -> None:
    """STOPPING set: a few short retries, then None (spool), long before RECORD_PATIENCE_S."""
    job_runner.begin_shutdown()
    calls, record = flaky(10_000)
    assert job_runner._record_or_spool(record) is None  # type: ignore[arg-type]
    assert 1 <= len(calls) < 10


def test_the_patience_running_out_spools_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_runner, "RECORD_PATIENCE_S", 0.0)
    _, record = flaky(10_000)
    assert job_runner._record_or_spool(record) is None  # type: ignore[arg-type]
