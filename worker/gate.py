"""Consume dial jobs only while the trunk account is registered, for the whole life of the process.

A worker whose registration is gone would burn every lead it took (401s,
timeouts), and one that hands each message back at once spins a tight
consume/reject loop against Redis. So the gate watches every REGISTER result
(start, refresh, retry) and two things close it:

* a REGISTER that failed (refresh refused, 401/403 on refresh, registrar gone
  or silent): the gate stops this process consuming the trunk's queue (through
  Celery's remote control, safe from any thread) and opens again on the next
  REGISTER that succeeds. The SIP thread retries ordinary failures with its
  own backoff; a 401/403 it does not retry (it may be a wrong password), so
  the gate does, slower (:data:`AUTH_RETRY_MIN_S` up to :data:`AUTH_RETRY_MAX_S`);
* an INVITE still refused with an auth failure after a re-register (the
  account registers but may not call): the gate re-registers after a delay
  that grows while the cycle repeats, and opens when that REGISTER succeeds.

Every decision runs on the gate's own thread: the SIP thread only drops a
result into a queue, so a slow broker never stalls SIP.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Literal

from worker.sip import RegistrationResult
from worker.sip.pacing import registration_backoff

log = logging.getLogger(__name__)

RETRY_MIN_S = 5.0
RETRY_MAX_S = 120.0
AUTH_RETRY_MIN_S = 10.0
AUTH_RETRY_MAX_S = 300.0  # under the 10 m window of the TrunkAuthFailures alert, so it stays firing
# A gate that stayed open this long starts its next recovery from RETRY_MIN_S again; one that closes
# sooner (REGISTER works but INVITEs are still refused) keeps its longer delay, so a trunk whose account
# lost the right to call costs one lead per growing interval, not one every few seconds.
STABLE_AFTER_S = 600.0
# After each change, the stop/resume broadcast is repeated this long after it (idempotent commands).
REPEAT_CONTROL_S = (2.0, 10.0, 30.0)

ClosedFor = Literal["registration", "invite_auth"]
_STOP = object()


def what_to_check(result: RegistrationResult) -> str:
    """One hint an operator can act on, by the kind of failure."""
    if result.status in (401, 407):
        return ("the trunk's credentials: DIALER_SIP_USERNAME, DIALER_SIP_PASSWORD and DIALER_SIP_REALM "
                "(or the trunk's password_env / password_file)")
    if result.status == 403:
        return "the account's rights with the carrier (enabled, allowed source IP, balance) and the password"
    if result.status in (408, 0) or result.status >= 500:
        return ("that the registrar in DIALER_SIP_REGISTRAR is up and reachable from this host (address, port, "
                "transport, firewall) and DIALER_SIP_BIND_ADDRESS / DIALER_SIP_PUBLIC_ADDRESS")
    return "the registrar's answer on the SIP health dashboard and its logs"


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
        self._closed_for: ClosedFor | None = None
        self._opened_at = time.monotonic()
        self._delay = RETRY_MIN_S
        self._auth_failures = 0
        self._retry_at: float | None = None
        self._repeat_at: list[float] = []
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="registration-gate", daemon=True)
        self._thread.start()

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def closed_for(self) -> ClosedFor | None:
        return self._closed_for

    def registration_result(self, result: RegistrationResult) -> None:
        """Every REGISTER result, from any thread (the SIP thread included): never blocks."""
        self._inbox.put(result)

    def close(self, why: str) -> None:
        """An INVITE met an auth failure after a re-register: stop consuming, re-register later (idempotent).

        Closed at once for this process's next task; the broker is told on the gate's thread.
        """
        with self._lock:
            self._open = False
        self._inbox.put(why)

    def shutdown(self) -> None:
        self._inbox.put(_STOP)
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ the gate's thread
    def _run(self) -> None:
        while True:
            due = [t for t in (self._retry_at, self._repeat_at[0] if self._repeat_at else None) if t is not None]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                now = time.monotonic()
                if self._repeat_at and self._repeat_at[0] <= now:
                    self._repeat_at.pop(0)
                    self._tell_broker(self._closed_for is None)
                if self._retry_at is not None and self._retry_at <= now:
                    self._retry_at = None
                    self._try_register()
                continue
            if item is _STOP:
                return
            try:
                if isinstance(item, RegistrationResult):
                    self._on_result(item)
                elif isinstance(item, str):
                    self._close_for_invite(item)
            except Exception:  # a broker hiccup in stop/resume must not end the watch
                log.exception("registration gate: handling %r failed", item)

    def _try_register(self) -> None:
        try:
            result = self._reregister()
        except Exception:  # the agent may be stopping; the next result or close tries again
            log.exception("re-register failed")
            return
        self._on_result(result, recovery=True)

    def _on_result(self, result: RegistrationResult, *, recovery: bool = False) -> None:
        if result.registered:
            self._auth_failures = 0
            if self._closed_for is None or (self._closed_for == "invite_auth" and not recovery):
                return  # a refresh while an INVITE-auth pause runs does not cut the pause short
            self._set_open(True, f"REGISTER answered {result.status} {result.reason}")
            return
        hint = what_to_check(result)
        if result.auth_rejected:
            self._auth_failures += 1
            wait = registration_backoff(self._auth_failures, base_s=AUTH_RETRY_MIN_S, cap_s=AUTH_RETRY_MAX_S)
            if self._retry_at is None or self._retry_at > time.monotonic() + wait:
                self._retry_at = time.monotonic() + wait
            log.error("REGISTER refused with %s %s; retrying in %.0f s; check %s", result.status, result.reason,
                      wait, hint)
        else:
            log.warning("REGISTER failed with %s %s; the SIP agent retries with backoff; check %s", result.status,
                        result.reason, hint)
        if self._closed_for != "registration":
            was_open = self._closed_for is None
            self._closed_for = "registration"
            if was_open:
                self._set_open(False, f"registration lost ({result.status} {result.reason})")

    def _close_for_invite(self, why: str) -> None:
        if self._closed_for is not None:
            return
        if time.monotonic() - self._opened_at > STABLE_AFTER_S:
            self._delay = RETRY_MIN_S
        self._closed_for = "invite_auth"
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, RETRY_MAX_S)
        self._set_open(False, why)

    def _tell_broker(self, consume: bool) -> None:
        try:
            (self._resume_consuming if consume else self._stop_consuming)()
        except Exception:  # the broker is away too: a task that runs meanwhile still checks is_open
            log.exception("could not tell the broker to %s consuming", "resume" if consume else "stop")

    def _set_open(self, is_open: bool, why: str) -> None:
        """The gate thread's view changes: tell the broker, then the runtime (metrics, health, trunk flag)."""
        with self._lock:
            self._open = is_open
            if is_open:
                self._closed_for = None
                self._retry_at = None
                self._opened_at = time.monotonic()
                log.warning("trunk registration restored (%s): consuming dial jobs again", why)
            else:
                log.error("trunk registration lost (%s): this worker stops taking dial jobs", why)
        self._tell_broker(is_open)
        # The remote control is a fire-and-forget broadcast: say it again a little later, in case one
        # was lost (both commands are idempotent), so a reopened gate never leaves the queue unconsumed.
        now = time.monotonic()
        self._repeat_at = [now + delay for delay in REPEAT_CONTROL_S]
        if self._on_change:
            self._on_change(is_open)
