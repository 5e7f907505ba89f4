"""Consume dial jobs only while the trunk account is registered.

A worker whose registration failed would burn every lead it took with 401s.
So when an INVITE still meets an auth failure after a re-register, the gate
stops this process consuming the trunk's queue (through Celery's remote
control, which is safe to call from any thread), keeps re-registering in the
background with backoff, and resumes consuming once a REGISTER succeeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from worker.sip import RegistrationResult

log = logging.getLogger(__name__)

RETRY_MIN_S = 5.0
RETRY_MAX_S = 120.0
# A gate that stayed open this long starts its next recovery from RETRY_MIN_S again; one that closes
# sooner (REGISTER works but INVITEs are still refused) keeps its longer delay, so a trunk whose account
# lost the right to call costs one lead per growing interval, not one every few seconds.
STABLE_AFTER_S = 600.0


class RegistrationGate:
    def __init__(
        self,
        reregister: Callable[[], RegistrationResult],
        *,
        stop_consuming: Callable[[], None],
        resume_consuming: Callable[[], None],
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self._reregister = reregister
        self._stop_consuming = stop_consuming
        self._resume_consuming = resume_consuming
        self._on_change = on_change
        self._open = True
        self._opened_at = time.monotonic()
        self._delay = RETRY_MIN_S
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_open(self) -> bool:
        return self._open

    def close(self, why: str) -> None:
        """Stop consuming and start re-registering in the background (idempotent)."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            if time.monotonic() - self._opened_at > STABLE_AFTER_S:
                self._delay = RETRY_MIN_S
            log.error("trunk registration lost (%s): this worker stops taking dial jobs", why)
            self._stop_consuming()
            if self._on_change:
                self._on_change(False)
            self._thread = threading.Thread(target=self._recover, name="registration-gate", daemon=True)
            self._thread.start()

    def shutdown(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _recover(self) -> None:
        delay = self._delay
        while not self._closed.wait(delay):
            try:
                result = self._reregister()
            except Exception:  # the agent may be stopping; try again later
                log.exception("re-register failed")
                result = None
            if result is not None and result.registered:
                with self._lock:
                    self._open = True
                    self._opened_at = time.monotonic()
                    self._delay = min(delay * 2, RETRY_MAX_S)
                    self._resume_consuming()
                    if self._on_change:
                        self._on_change(True)
                log.warning("trunk registration restored: consuming dial jobs again")
                return
            delay = min(delay * 2, RETRY_MAX_S)
