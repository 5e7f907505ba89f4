"""SipAgent: the thread-safe face of the process's one SIP endpoint.

Callers on any thread (a Celery thread pool, a test) ask for calls; a single
SIP thread (:mod:`worker.sip.runtime`) owns pjsua2 and does the work. The two
meet only in a queue of commands and in ``concurrent.futures.Future`` objects.

Limits are refused cleanly, never crashed into:

* at most ``max_calls`` (<= 4, the wheel's limit) calls are live at once;
  further requests wait in a FIFO for up to ``slot_wait_s`` and then fail
  with :class:`~shared.errors.CapacityExceeded`;
* more than ``max_waiting`` requests not yet started are refused at once
  with CapacityExceeded;
* call starts are spaced evenly at ``max_call_starts_per_s`` (default 50/s),
  below the ~60/s at which pjsua's ioqueue runs out and the process aborts.

CapacityExceeded (and its subclass AgentStopped) always means no INVITE was
sent.

``observe_challenges`` (default on) fills ``RegistrationResult.challenges``
and ``CallResult.challenges`` with the 401/407s pjsua answered itself. It
reads pjsua's level-5 log (:mod:`worker.sip.responses`), about 110 lines a
call, which costs some 1.3 ms of CPU per call (2.5 -> 3.8 ms measured against
sipp's answer_fast at 48 calls/s, most of it pjlib formatting its own lines);
switch it off where nobody looks at the challenges. pjsua's own lines at or
below ``log_level`` (1 errors, 2 warnings, 3 info) go to the Python logger
``worker.sip.pjsua``, through the same secret-redacting filter as ours.

Only one agent may run per process at a time (pjsua allows one Endpoint);
stop it and a new one can start in the same process.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from types import TracebackType

from shared.errors import CapacityExceeded, ConfigError
from worker.sip.answer import AnswerScript
from worker.sip.commands import AbortCall, AgentLimits, CallRequest, Command, PlaceCall, Reregister, Stop
from worker.sip.config import CallResult, RegistrationResult, SipAccountConfig
from worker.sip.errors import AgentStopped, CallTimedOut
from worker.sip.runtime import SipRuntime

log = logging.getLogger("worker.sip")

RegistrationCallback = Callable[[RegistrationResult], None]
# Called on the SIP thread when a call is answered; its script runs the call (worker.sip.answer).
ScriptFactory = Callable[[], AnswerScript]

# Beyond ring and hold time, how long a call may take to end: SIP timer B/F
# (32 s) for an INVITE nobody answers at all, plus a margin.
_CALL_SLACK_S = 40.0

# Measured with this wheel: 200/s aborts in pj_ioqueue_register_sock2; 50/s holds (bench/bench_sip_agent.py).
MAX_SAFE_STARTS_PER_S = 55.0

_process_lock = threading.Lock()
_process_agent: SipAgent | None = None


class SipAgent:
    """Places SIP calls through one registered account. See the module docstring."""

    def __init__(
        self,
        account: SipAccountConfig,
        *,
        max_calls: int = 4,
        max_call_starts_per_s: float = 50.0,
        max_waiting: int = 32,
        slot_wait_s: float = 30.0,
        poll_ms: int = 10,
        log_level: int = 0,
        observe_challenges: bool = True,
    ) -> None:
        if not 1 <= max_calls <= 4:
            raise ConfigError(f"max_calls must be 1..4 (the pjsua2 wheel's limit), got {max_calls}")
        if not 0 < max_call_starts_per_s <= MAX_SAFE_STARTS_PER_S:
            raise ConfigError(
                f"max_call_starts_per_s must be in (0, {MAX_SAFE_STARTS_PER_S:g}]: above ~60/s pjsua's"
                " 64-handle ioqueue runs out and the process aborts"
            )
        self.account = account
        self._limits = AgentLimits(
            max_calls, max_call_starts_per_s, slot_wait_s, poll_ms, log_level, observe_challenges
        )
        self._max_outstanding = max_calls + max(0, max_waiting)
        self._inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._callbacks: list[RegistrationCallback] = []
        self._runtime = SipRuntime(account, self._limits, self._inbox, self._notify_registration)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._outstanding = 0
        self._accepting = False
        self._pid = 0

    def __repr__(self) -> str:
        return (
            f"SipAgent(trunk={self.account.name!r}, address={self.local_address!r}, live={self.live_calls})"
        )

    # ----------------------------------------------------------------- lifecycle
    def start(self, register_timeout_s: float = 10.0) -> RegistrationResult | None:
        """Start the SIP thread and, if the account registers, wait for the first REGISTER.

        Returns the registration result (check ``registered``; a 401/403 is
        reported, not raised) or None when ``register`` is off. If no answer
        comes in ``register_timeout_s`` the result is a synthetic 408 and the
        agent keeps trying in the background with backoff.
        """
        global _process_agent
        with _process_lock:
            if _process_agent is not None:
                raise ConfigError("a SipAgent is already running in this process; stop it first")
            if self._thread is not None:
                raise ConfigError("a SipAgent cannot be started twice; create a new one")
            _process_agent = self
        ready: Future[str] = Future()
        first_reg: Future[RegistrationResult] | None = Future() if self.account.register else None
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=self._runtime.run, args=(ready, first_reg), name=f"sip-{self.account.name}", daemon=True
        )
        self._thread.start()
        try:
            ready.result()
        except BaseException:
            self._thread.join()
            _release_process_slot(self)
            raise
        self._accepting = True
        if first_reg is None:
            return None
        try:
            return first_reg.result(timeout=register_timeout_s)
        except FutureTimeout:
            return _no_answer(register_timeout_s)

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking calls, let live ones finish for ``grace_s``, hang up the rest, shut down.

        Every future handed out is resolved before this returns: calls that
        ran get their CallResult, requests that never started get AgentStopped.
        """
        self._accepting = False
        thread = self._thread
        if thread is None or not thread.is_alive():
            _release_process_slot(self)
            return
        if threading.current_thread() is thread:
            raise ConfigError("stop() called from the SIP thread (a registration callback?)")
        self._inbox.put(Stop(grace_s))
        thread.join()
        _release_process_slot(self)
        log.info("SIP agent for trunk %s stopped", self.account.name)

    def __enter__(self) -> SipAgent:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------- calls
    def place_call(
        self, uri: str, *, ring_timeout_s: float = 45.0, hold_s: float = 0.0,
        script_factory: ScriptFactory | None = None,
    ) -> Future[CallResult]:
        """Queue one call and return at once; the future resolves when it has ended.

        The future fails with CapacityExceeded (no slot in time, or too many
        waiting), AgentStopped, InvalidNumber (bad URI) or TransientSipError
        (pjsua refused the INVITE); otherwise it holds a CallResult.
        """
        return self._submit(uri, ring_timeout_s, hold_s, script_factory).future

    def call(
        self, uri: str, *, ring_timeout_s: float = 45.0, hold_s: float = 0.0, timeout_s: float | None = None,
        script_factory: ScriptFactory | None = None,
    ) -> CallResult:
        """Place a call and block until it has ended; thread-safe.

        ``timeout_s`` bounds the whole wait (default: slot wait + ring timeout
        + hold + SIP timers; a call with a script should pass the flow's longest
        duration). When it runs out the call is aborted (hung up if
        it started) and CallTimedOut is raised.
        """
        request = self._submit(uri, ring_timeout_s, hold_s, script_factory)
        if timeout_s is None:
            timeout_s = self._limits.slot_wait_s + ring_timeout_s + hold_s + _CALL_SLACK_S
        try:
            return request.future.result(timeout=timeout_s)
        except FutureTimeout:
            self._inbox.put(AbortCall(request))
            raise CallTimedOut(f"no call result within {timeout_s:g} s; the call was aborted") from None

    def reregister(self, timeout_s: float = 10.0) -> RegistrationResult:
        """Send a fresh REGISTER now and wait for its result.

        Like :meth:`start`, a registrar that does not answer within
        ``timeout_s`` gives a synthetic 408 result rather than an exception,
        so a caller's retry loop sees one shape of answer.
        """
        if not self.account.register:
            raise ConfigError(f"trunk {self.account.name!r} is configured with register=False")
        self._check_usable()
        future: Future[RegistrationResult] = Future()
        self._inbox.put(Reregister(future))
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            return _no_answer(timeout_s)

    def uri_for(self, user_part: str) -> str:
        """``sip:<user_part>@<domain>`` (``sips:`` if the trunk asks) for this trunk; never a transport parameter."""
        return self.account.uri_for(user_part)

    # ------------------------------------------------------------------- state
    @property
    def running(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    @property
    def registration(self) -> RegistrationResult | None:
        return self._runtime.registration

    @property
    def is_registered(self) -> bool:
        reg = self._runtime.registration
        return reg is not None and reg.registered and self.running

    @property
    def can_call(self) -> bool:
        """Running and, for a trunk that registers, registered (``register=False`` trunks need no REGISTER)."""
        return self.is_registered or (self.running and not self.account.register)

    @property
    def next_register_in_s(self) -> float | None:
        """Seconds until the agent re-REGISTERs after a failure; None when no retry is due.

        Stays None after a 401/403: wrong credentials are reported, not retried.
        """
        retry_at = self._runtime.reg_retry_at
        return None if retry_at is None else max(0.0, retry_at - time.monotonic())

    @property
    def live_calls(self) -> int:
        return self._runtime.live_calls

    @property
    def local_address(self) -> str:
        """``host:port`` of our SIP transport (the OS-chosen port when local_port is 0)."""
        return self._runtime.local_address

    def on_registration_change(self, callback: RegistrationCallback) -> None:
        """Call ``callback(result)`` after every REGISTER result, on the SIP thread: keep it cheap."""
        self._callbacks.append(callback)

    # ---------------------------------------------------------------- internals
    def _submit(
        self, uri: str, ring_timeout_s: float, hold_s: float, script_factory: ScriptFactory | None = None
    ) -> CallRequest:
        if not ring_timeout_s > 0 or not hold_s >= 0:
            raise ConfigError(f"ring_timeout_s must be > 0 and hold_s >= 0, got {ring_timeout_s}, {hold_s}")
        self._check_usable()
        request = CallRequest(
            uri, ring_timeout_s, hold_s, time.monotonic() + self._limits.slot_wait_s, script_factory=script_factory
        )
        with self._lock:
            if self._outstanding >= self._max_outstanding:
                raise CapacityExceeded(f"{self._outstanding} calls already live or waiting in this process")
            self._outstanding += 1
        request.future.add_done_callback(self._release_outstanding)
        self._inbox.put(PlaceCall(request))
        return request

    def _check_usable(self) -> None:
        if os.getpid() != self._pid:
            raise ConfigError("this SipAgent belongs to another process; create one after fork")
        if not self.running:
            raise AgentStopped("SIP agent is not running")

    def _release_outstanding(self, _: Future[CallResult]) -> None:
        with self._lock:
            self._outstanding -= 1

    def _notify_registration(self, result: RegistrationResult) -> None:
        for callback in list(self._callbacks):
            try:
                callback(result)
            except Exception:
                log.exception("registration callback %r failed", callback)


def _no_answer(timeout_s: float) -> RegistrationResult:
    return RegistrationResult(408, f"no REGISTER answer within {timeout_s:g} s", False, 0, datetime.now(UTC))


@atexit.register
def _stop_at_exit() -> None:
    """Safety net: hang up and unregister if the process exits without stop()."""
    agent = _process_agent
    if agent is not None and agent.running:
        agent.stop(grace_s=0)


def _release_process_slot(agent: SipAgent) -> None:
    global _process_agent
    with _process_lock:
        if _process_agent is agent:
            _process_agent = None
