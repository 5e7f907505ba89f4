"""The Celery app both sides share: the producer sends ``dial(job_id)``, the worker runs it.

Messages carry only a job id: the number, campaign and trunk live in Postgres,
so a message can be lost, duplicated or redelivered without harm (the worker's
claim decides), and no payload ever holds a number's history or a secret.

Settings that matter for at-most-once dialling:
- ``task_acks_late``: a message is acked after the task ran, so one lost with a
  dying worker is redelivered, and the claim in Postgres drops the duplicate.
- ``task_reject_on_worker_lost`` stays off and no ETA/countdown is ever used:
  with the Redis broker such messages come back after the visibility timeout.
- ``worker_prefetch_multiplier=1``: a worker reserves no more than it can dial.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

DIAL_TASK = "dialer.dial"
# A process holding a message longer than this (calls last at most ring timeout + hold) has died.
VISIBILITY_TIMEOUT_S = 3600


def make_celery(broker_url: str, *, name: str = "sip-dialer") -> Celery:
    app = Celery(name, broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_pool_limit=4,
        task_default_queue="dial.default",
        task_create_missing_queues=True,
    )
    return app


def dial_queue(trunk: str) -> str:
    return f"dial.{trunk}"


def enqueue_dial(app: Celery, job_id: int, trunk: str, producer: Any = None) -> Any:
    """Send ``dial(job_id)`` to the trunk's queue, now (never with an ETA).

    Pass a ``producer`` (``app.producer_or_acquire()``) when sending a batch: one
    connection for all of them instead of one checkout per message.
    """
    return app.send_task(DIAL_TASK, args=[job_id], queue=dial_queue(trunk), producer=producer)
