"""The SIP thread: owns the Endpoint, places paced calls, keeps the account registered.

Every method of :class:`SipRuntime` except the constructor runs on the one
thread that created the Endpoint. Other threads reach it only through the
``inbox`` queue (:mod:`worker.sip.commands`) and the futures those commands carry; it
publishes its state through plain attributes that other threads only read.

One loop turn: ``libHandleEvents`` (pjsua callbacks fire inside it and only
record facts), then commands from the inbox, then :meth:`_tick`, which acts:
releases ended calls, starts waiting calls when a slot and the pacer allow,
fires ring and hold timers, retries registration, and drives shutdown.
"""

from __future__ import annotations

import gc
import logging
import math
import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.errors import CapacityExceeded, InvalidNumber, TransientSipError
from worker.sip import pj_objects as pjo
from worker.sip.answer import MediaError
from worker.sip.commands import (
    AbortCall,
    AgentLimits,
    CallRequest,
    Command,
    PlaceCall,
    Reregister,
    Stop,
    fail_future,
    resolve_future,
)
from worker.sip.config import CallResult, RegistrationResult, SipAccountConfig
from worker.sip.errors import AgentStopped, CertificateRejected
from worker.sip.pacing import EvenPacer, registration_backoff
from worker.sip.responses import ResponseLog
from worker.sip.scripted import ScriptedCall
from worker.sip.tls_check import TlsVerifyLog, certificate_message, is_certificate_failure
from worker.sip.trace import CallTrace

log = logging.getLogger("worker.sip")

_SLOT_RETRY_S = 0.02  # pjsua keeps a call slot briefly after DISCONNECTED
_HANGUP_BOUND_S = 5.0  # after the grace period, how long hung-up calls get to end
_UNREGISTER_BOUND_S = 2.0


@dataclass(eq=False)
class _Live:
    request: CallRequest
    call: pjo.PjCall
    ring_deadline: float
    hangup_at: float | None = None
    hung_up: bool = False
    flow: ScriptedCall | None = None  # the answer script, when the request has one

    def result(self, *, now: datetime | None = None, error: str | None = None) -> CallResult:
        result = self.call.trace.result(now=now, error=error)
        flow = self.flow.flow() if self.flow is not None else None
        return result if flow is None else replace(result, flow=flow)


class SipRuntime:
    """State of the SIP thread. Public attributes are read by other threads."""

    def __init__(
        self,
        account: SipAccountConfig,
        limits: AgentLimits,
        inbox: queue.SimpleQueue[Command],
        on_registration: Callable[[RegistrationResult], None],
    ) -> None:
        self.account = account
        self.limits = limits
        self.inbox = inbox
        self.registration: RegistrationResult | None = None
        self.live_calls = 0
        self.local_address = ""
        self._on_registration = on_registration
        self._pacer = EvenPacer(limits.max_call_starts_per_s)
        self._max_calls = max(1, min(limits.max_calls, pjo.MAX_CALLS_CAP))
        self._ep: Any = None
        self._acc: pjo.PjAccount | None = None
        self._reg_mailbox: list[pjo.RegEvent] = []
        self._responses = ResponseLog()  # the challenges pjsua answers itself, from its log
        self._tls_log = TlsVerifyLog()  # why OpenSSL refused a server certificate
        self._reg_waiters: list[Future[RegistrationResult]] = []
        self._reg_failures = 0
        self.reg_retry_at: float | None = None
        self._waiting: deque[CallRequest] = deque()
        self._live: list[_Live] = []
        self._slot_retry_at = 0.0
        self._stopping = False
        self._grace_deadline = 0.0
        self._hard_deadline: float | None = None
        self._finished = False

    # ----------------------------------------------------------------- lifecycle
    def run(self, ready: Future[str], first_registration: Future[RegistrationResult] | None) -> None:
        """Thread body: open, loop until stopped, close. Never raises."""
        try:
            self._open(first_registration)
        except BaseException as exc:
            ready.set_exception(TransientSipError(f"SIP endpoint failed to start: {exc}"))
            self._close()
            return
        ready.set_result(self.local_address)
        try:
            while not self._finished:
                self._ep.libHandleEvents(self._wait_ms())
                self._drain_inbox()
                self._tick(time.monotonic())
        except BaseException:
            log.exception("SIP thread failed; failing every outstanding call")
            self._fail_everything(TransientSipError("SIP thread failed"))
        finally:
            self._close()

    def _open(self, first_registration: Future[RegistrationResult] | None) -> None:
        self._ep, self.local_address = pjo.open_endpoint(
            self.account,
            max_calls=self._max_calls,
            log_level=self.limits.log_level,
            responses=self._responses if self.limits.observe_challenges else None,
            tls_log=self._tls_log,
        )
        if first_registration is not None:
            self._reg_waiters.append(first_registration)
        self._acc = pjo.PjAccount(self._reg_mailbox, self._responses)
        self._acc.create(pjo.account_config(self.account))
        log.info("SIP agent for trunk %s listening on %s", self.account.name, self.local_address)

    def _close(self) -> None:
        """Drop every pjsua object on this thread, then destroy the library."""
        self._stopping = True
        self._fail_everything(AgentStopped("SIP agent stopped"))
        self._live.clear()
        if self._acc is not None:
            self._unregister()
            try:
                self._acc.shutdown()
            except pjo.PjError:
                log.debug("account shutdown failed", exc_info=True)
            self._acc = None
        gc.collect()  # any stray pjsua wrapper must die here, on this thread
        if self._ep is not None:
            try:
                # We already waited for the un-REGISTER; without NO_RX_MSG pjsua
                # would sleep a fixed second for replies that cannot come.
                self._ep.libDestroy(pjo.DESTROY_NO_RX_MSG)
            finally:
                self._ep = None
        self.live_calls = 0

    def _unregister(self) -> None:
        """Send the un-REGISTER and wait (bounded) for its answer, challenge included."""
        reg = self.registration
        if self._acc is None or self._ep is None or reg is None or not reg.registered:
            return
        self._reg_mailbox.clear()
        try:
            self._acc.setRegistration(False)
        except pjo.PjError as exc:
            log.debug("un-REGISTER: %s", exc.reason)
            return
        deadline = time.monotonic() + _UNREGISTER_BOUND_S
        while not self._reg_mailbox and time.monotonic() < deadline:
            self._ep.libHandleEvents(self.limits.poll_ms)
        self._handle_registration_events(time.monotonic())

    def _fail_everything(self, exc: Exception) -> None:
        for req in self._waiting:
            fail_future(req.future, exc)
        self._waiting.clear()
        now = pjo.utcnow()
        for live in self._live:
            error = None if live.call.trace.ended else "agent stopped before the call ended"
            if live.flow is not None:
                live.flow.close()
            resolve_future(live.request.future, live.result(now=now, error=error))
        for waiter in self._reg_waiters:
            fail_future(waiter, exc)
        self._reg_waiters.clear()
        while True:
            try:
                cmd = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(cmd, PlaceCall):
                fail_future(cmd.request.future, exc)
            elif isinstance(cmd, Reregister):
                fail_future(cmd.future, exc)

    # ------------------------------------------------------------------ commands
    def _drain_inbox(self) -> None:
        while True:
            try:
                cmd = self.inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(cmd, PlaceCall):
                if self._stopping:
                    fail_future(cmd.request.future, AgentStopped("SIP agent is stopping"))
                else:
                    self._waiting.append(cmd.request)
            elif isinstance(cmd, AbortCall):
                cmd.request.aborted = True
            elif isinstance(cmd, Reregister):
                self._reregister(cmd.future)
            elif isinstance(cmd, Stop):
                self._begin_stop(cmd.grace_s)

    def _reregister(self, future: Future[RegistrationResult]) -> None:
        if self._acc is None or not self.account.register:
            fail_future(future, TransientSipError("this account does not register"))
            return
        self._reg_waiters.append(future)
        self.reg_retry_at = None
        try:
            self._acc.setRegistration(True)
        except pjo.PjError as exc:  # e.g. a REGISTER already in flight: its result will do
            log.debug("setRegistration: %s", exc.reason)

    def _begin_stop(self, grace_s: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._grace_deadline = time.monotonic() + max(0.0, grace_s)
        for req in self._waiting:
            fail_future(req.future, AgentStopped("SIP agent is stopping"))
        self._waiting.clear()
        log.info("SIP agent stopping with %d live call(s)", len(self._live))

    # ---------------------------------------------------------------------- tick
    def _wait_ms(self) -> int:
        if self._waiting and self._slots_used() < self._max_calls:
            delay = max(self._pacer.delay(), self._slot_retry_at - time.monotonic())
            return max(0, min(self.limits.poll_ms, math.ceil(delay * 1000)))
        return self.limits.poll_ms

    def _tick(self, now: float) -> None:
        self._handle_registration_events(now)
        self._reap_ended_calls()  # before any new call can reuse a pjsua call slot
        self._expire_waiting(now)
        self._start_calls(now)
        self._run_call_timers(now)
        if self.reg_retry_at is not None and now >= self.reg_retry_at and self._acc is not None:
            self.reg_retry_at = None
            try:
                self._acc.setRegistration(True)
            except pjo.PjError as exc:
                log.debug("re-REGISTER: %s", exc.reason)
        if self._stopping:
            self._advance_stop(now)
        self.live_calls = len(self._live)

    def _handle_registration_events(self, now: float) -> None:
        while self._reg_mailbox:
            ev = self._reg_mailbox.pop(0)
            cert_failure = is_certificate_failure(ev.code, ev.reason)
            result = RegistrationResult(
                status=ev.code,
                reason=certificate_message(self.account, self._tls_log.latest()) if cert_failure else ev.reason,
                registered=ev.active and 200 <= ev.code < 300,
                expires_s=ev.expires_s,
                at=ev.at,
                challenges=ev.challenges,
                certificate_rejected=cert_failure,
            )
            self.registration = result
            if result.registered or self._stopping:
                self._reg_failures = 0
            elif result.auth_rejected:
                log.error("trunk %s rejected our credentials: %d %s", self.account.name, ev.code, ev.reason)
            elif result.certificate_rejected:  # a configuration error: retrying cannot help
                log.error("%s", result.reason)
            else:
                self._reg_failures += 1
                wait = registration_backoff(self._reg_failures)
                self.reg_retry_at = now + wait
                log.warning("REGISTER failed (%d %s); retrying in %.0f s", ev.code, ev.reason, wait)
            for waiter in self._reg_waiters:
                resolve_future(waiter, result)
            self._reg_waiters.clear()
            try:
                self._on_registration(result)
            except Exception:
                log.exception("registration callback failed")

    def _reap_ended_calls(self) -> None:
        """Resolve and release calls that reached DISCONNECTED.

        Each PjCall is freed right here, on the SIP thread, outside any pjsua
        callback, and before the next makeCall: pjsua2's Call destructor
        clears and hangs up whatever call now holds its old slot id, so a
        Call object outliving its call would kill the next call in that slot.
        """
        now = time.monotonic()
        for live in self._live:
            if live.flow is not None:
                live.flow.release_ended_leg()
            if live.call.trace.ended and live.flow is not None:
                live.flow.ended("local" if live.call.trace.local_hangup else "remote", now)
        ended = [live for live in self._live if live.call.trace.ended and (live.flow is None or live.flow.idle(now))]
        if not ended:
            return
        self._live = [live for live in self._live if live not in ended]
        for live in ended:
            result = live.result()
            if result.error and is_certificate_failure(result.status, result.reason):
                # Nothing reached the trunk: a configuration error, not a call outcome.
                message = certificate_message(self.account, self._tls_log.latest())
                log.error("%s", message)
                fail_future(live.request.future, CertificateRejected(message))
            else:
                resolve_future(live.request.future, result)
        del ended  # the last references to those PjCall objects

    def _expire_waiting(self, now: float) -> None:
        while self._waiting and (self._waiting[0].aborted or self._waiting[0].future.done()):
            fail_future(self._waiting.popleft().future, CapacityExceeded("call aborted before it started"))
        while self._waiting and now >= self._waiting[0].start_deadline:
            req = self._waiting.popleft()
            fail_future(req.future, CapacityExceeded(f"no free call slot within {self.limits.slot_wait_s:g} s"))

    def _start_calls(self, now: float) -> None:
        while self._waiting and self._slots_used() < self._max_calls and now >= self._slot_retry_at:
            if not self._pacer.try_acquire():
                return
            req = self._waiting.popleft()
            if req.aborted or req.future.done():
                continue
            if not pjo.verify_uri(self._ep, req.uri):
                fail_future(req.future, InvalidNumber(req.uri, "not a valid SIP URI"))
                continue
            if not self._make_call(req, now):
                return

    def _make_call(self, req: CallRequest, now: float) -> bool:
        """Send the INVITE; False when pjsua had no free slot (the request waits again)."""
        assert self._acc is not None
        if req.future.done() or not (req.future.running() or req.future.set_running_or_notify_cancel()):
            return True  # cancelled by the caller while waiting
        trace = CallTrace(req.uri, pjo.utcnow())
        call = pjo.PjCall(self._acc, trace, self._responses)
        try:
            call.makeCall(req.uri, pjo.new_call_param())
        except pjo.PjError as exc:
            del call  # never got a call id, so freeing it touches no slot
            if exc.status == pjo.PJ_ETOOMANY:
                self._waiting.appendleft(req)
                self._slot_retry_at = now + _SLOT_RETRY_S
                return False
            fail_future(req.future, TransientSipError(f"pjsua refused the call: {exc.reason}"))
            return True
        trace.call_id = pjo.call_id_of(call)
        self._live.append(_Live(req, call, ring_deadline=now + req.ring_timeout_s))
        return True

    def _run_call_timers(self, now: float) -> None:
        for live in self._live:
            trace = live.call.trace
            if live.hung_up or trace.ended:
                continue
            if live.request.aborted:
                self._hang_up(live)
            elif live.request.script_factory is not None:
                self._run_script(live, now)
            elif trace.answered:
                if live.hangup_at is None:
                    live.hangup_at = now + live.request.hold_s
                if now >= live.hangup_at:
                    self._hang_up(live)
            elif now >= live.ring_deadline:
                self._hang_up(live, ring_timeout=True)

    def _run_script(self, live: _Live, now: float) -> None:
        """Ring timer until answered; then the script decides when the call ends."""
        call = live.call
        if live.flow is None:
            if call.confirmed and live.request.script_factory is not None:
                live.flow = ScriptedCall(live.request.script_factory)
                live.flow.start(call, call.trace.answer_at, now, lambda: None if live.hung_up else self._hang_up(live),
                                self._place_leg)
            elif not call.trace.answered and now >= live.ring_deadline:
                self._hang_up(live, ring_timeout=True)
                return
        if live.flow is not None and live.flow.tick(now) and not live.hung_up:
            self._hang_up(live)

    def _place_leg(self, uri: str) -> pjo.PjCall:
        """A bridged transfer's second call, through the same account; MediaError when it cannot start."""
        if self._acc is None or self._stopping:
            raise MediaError("the SIP agent is stopping")
        if not pjo.verify_uri(self._ep, uri):
            raise MediaError(f"{uri!r} is not a valid SIP URI")
        if self._slots_used() >= self._max_calls:
            raise MediaError(f"no free call slot for the bridged call ({self._max_calls} in use)")
        trace = CallTrace(uri, pjo.utcnow())
        call = pjo.PjCall(self._acc, trace, self._responses)
        try:
            call.makeCall(uri, pjo.new_call_param())
        except pjo.PjError as exc:
            del call  # never got a call id, so freeing it touches no slot
            raise MediaError(f"pjsua refused the bridged call to {uri}: {exc.reason.strip()}") from None
        trace.call_id = pjo.call_id_of(call)
        return call

    def _slots_used(self) -> int:
        """pjsua call slots held: our calls plus their bridged legs."""
        return len(self._live) + sum(1 for live in self._live if live.flow is not None and live.flow.holds_leg)

    def _hang_up(self, live: _Live, *, ring_timeout: bool = False) -> None:
        live.hung_up = True
        live.call.trace.on_local_hangup(ring_timeout=ring_timeout)
        pjo.hangup(live.call)

    def _advance_stop(self, now: float) -> None:
        if self._live and now < self._grace_deadline:
            return
        if self._hard_deadline is None:
            self._hard_deadline = now + _HANGUP_BOUND_S
            for live in self._live:
                if not live.hung_up and not live.call.trace.ended:
                    self._hang_up(live)
        if not self._live or now >= self._hard_deadline:
            self._finished = True
