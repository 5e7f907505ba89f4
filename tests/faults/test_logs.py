"""Logs of real processes: the level reaches every worker child, JSON lines carry the job's fields, no secret leaks.

A deployment sets DIALER_LOG_LEVEL (and DIALER_LOG_FORMAT) and nothing else:
the supervisor's children must then log each try at INFO, and Celery must not
re-configure their logging. The secret filter is proven on the real handlers:
a malformed dial message whose argument is the trunk password makes Celery log
the task failure with its arguments, a line that really carries the password
into the filter, which only the password registered by the worker's runtime can
mask (the URL rule does not apply).
"""

from __future__ import annotations

import json

import pytest

from shared.queue import DIAL_TASK, make_celery
from tests.faults.conftest import RigFactory
from tests.faults.rig import PASSWORD, Plan, start_campaign, start_dispatchers
from tests.support.fleet import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]


def send_malformed_message(redis_url: str) -> None:
    """A dial message whose argument is the password, as a buggy producer might send."""
    app = make_celery(redis_url)
    try:
        app.send_task(DIAL_TASK, args=[PASSWORD], queue="dial.default")
    finally:
        app.close()


@pytest.mark.parametrize(("fmt", "level_by"), [("text", "option"), ("json", "environment")])
def test_worker_logs_each_try_at_the_one_level_and_masks_the_password(
    rig_factory: RigFactory, fmt: str, level_by: str
) -> None:
    """``dialer --log-level INFO`` or DIALER_LOG_LEVEL=INFO alone: per-try lines from the worker children,
    the password masked in either format."""
    env = {"DIALER_LOG_FORMAT": fmt, **({"DIALER_LOG_LEVEL": "INFO"} if level_by == "environment" else {})}
    rig = rig_factory(scenario="carrier", extra_env=env)
    campaign_id = start_campaign(rig, Plan(name=f"logs-{fmt}", jobs=2, hold_s=0.5))
    workers = rig.fleet.start_worker(1, name="workers", log_level=None,
                                     dialer_args=["--log-level", "INFO"] if level_by == "option" else ())
    [dispatcher] = start_dispatchers(rig)
    rig.wait_settled(campaign_id, 120, statuses=("completed",))
    send_malformed_message(rig.redis.url())
    wait_until(lambda: "invalid literal" in workers.log_text(), 60, "the malformed message's failure logged")
    rig.fleet.stop(grace_s=10.0)  # flush every log before reading it

    jobs = [job for (job,) in rig.query("SELECT id FROM dial_jobs WHERE campaign_id = %s ORDER BY id",
                                        (campaign_id,))]
    worker_log, dispatcher_log = workers.log_text(), dispatcher.log_text()
    assert PASSWORD not in worker_log and PASSWORD not in dispatcher_log
    # Celery's banner has asterisks of its own: look for the masked argument itself.
    assert "base 10: '***'" in worker_log, "the malformed message's failure reached the filter, masked"
    if fmt == "text":
        for job in jobs:
            assert f"job {job} try 0 " in worker_log, worker_log[-3000:]
        return
    records = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    tries = [r for r in records if r["logger"] == "worker.job_runner" and " try " in r["message"]]
    assert sorted({r["job_id"] for r in tries}) == jobs, tries  # the carrier wants +86: several tries a job
    assert all(r["trunk"] == "default" and r["call_id"] and r["level"] == "INFO" for r in tries), tries
    failure = [r for r in records if r["logger"].startswith("celery") and r["level"] == "ERROR"]
    assert failure and "base 10: '***'" in failure[0]["message"], records[-5:]
    assert any(line.startswith("{") for line in dispatcher_log.splitlines()), dispatcher_log[-2000:]
