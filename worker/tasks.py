"""The Celery task: ``dial(job_id)``, a thin wrapper around :func:`worker.job_runner.run_dial_job`.

The message is acked after the task ran (``acks_late``). A worker whose trunk
is not registered hands the message back (``Reject(requeue=True)``) for a
registered worker to take; the job stays ``queued`` and nobody is called.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from celery import Celery, signals
from celery.exceptions import Reject

from shared.logs import bind_fields, keep_celery_off_logging
from shared.queue import DIAL_TASK
from worker import runtime
from worker.job_runner import NotRegistered, run_dial_job

log = logging.getLogger(__name__)


def _bind_job(args: Any = None, **_: Any) -> None:
    """Before each task, in its thread: every line it logs carries the job id and the trunk."""
    try:
        trunk: str | None = runtime.current().trunk.name
    except RuntimeError:
        trunk = None
    bind_fields(job_id=args[0] if args else None, trunk=trunk)


def _unbind_job(**_: Any) -> None:
    bind_fields()


def register_tasks(app: Celery) -> None:
    keep_celery_off_logging()  # the worker logs through shared.logs's handler, level and filter
    signals.task_prerun.connect(_bind_job, weak=False)
    signals.task_postrun.connect(_unbind_job, weak=False)
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
