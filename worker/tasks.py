"""The Celery task: ``dial(job_id)``, a thin wrapper around :func:`worker.job_runner.run_dial_job`.

The message is acked after the task ran (``acks_late``). A worker whose trunk
is not registered hands the message back (``Reject(requeue=True)``) for a
registered worker to take; the job stays ``queued`` and nobody is called.
"""

from __future__ import annotations

import logging

import psycopg
from celery import Celery
from celery.exceptions import Reject

from shared.queue import DIAL_TASK
from worker import runtime
from worker.job_runner import NotRegistered, run_dial_job

log = logging.getLogger(__name__)


def register_tasks(app: Celery) -> None:
    @app.task(name=DIAL_TASK, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]  # celery is untyped
    def dial(job_id: int) -> str:
        try:
            return run_dial_job(runtime.current(), int(job_id))
        except NotRegistered:
            log.warning("job %s: trunk not registered in this worker; message requeued", job_id)
            raise Reject("trunk not registered", requeue=True) from None
        except psycopg.OperationalError:
            # Before a claim nobody was called. After a call this comes only once its outcome waited
            # RECORD_PATIENCE_S in vain; the reaper then records the attempt from its expired lease.
            log.warning("job %s: Postgres unavailable; message requeued", job_id)
            raise Reject("database unavailable", requeue=True) from None
