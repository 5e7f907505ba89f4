"""Errors of the SIP agent, placed in the one tree of :mod:`shared.errors`.

    CapacityExceeded (retryable; no INVITE was sent)
    └── AgentStopped      the agent is stopping or stopped; try another worker
    TransientSipError (retryable)
    └── CallTimedOut      call() gave up waiting; the call was hung up
"""

from __future__ import annotations

from shared.errors import CapacityExceeded, TransientSipError


class AgentStopped(CapacityExceeded):
    """The agent refused or dropped a call because it is shutting down.

    A subclass of CapacityExceeded because the caller's remedy is the same:
    no INVITE went out, so put the job back for another worker.
    """


class CallTimedOut(TransientSipError):
    """``SipAgent.call`` waited longer than its ``timeout_s``; the call was aborted."""
