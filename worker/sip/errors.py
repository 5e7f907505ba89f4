"""Errors of the SIP agent, placed in the one tree of :mod:`shared.errors`.

    CapacityExceeded (retryable; no INVITE was sent)
    └── AgentStopped      the agent is stopping or stopped; try another worker
    TransientSipError (retryable)
    └── CallTimedOut      call() gave up waiting; the call was hung up
    ConfigError (permanent)
    └── CertificateRejected  the trunk's TLS certificate is not trusted
"""

from __future__ import annotations

from shared.errors import CapacityExceeded, ConfigError, TransientSipError


class AgentStopped(CapacityExceeded):
    """The agent refused or dropped a call because it is shutting down.

    A subclass of CapacityExceeded because the caller's remedy is the same:
    no INVITE went out, so put the job back for another worker.
    """


class CallTimedOut(TransientSipError):
    """``SipAgent.call`` waited longer than its ``timeout_s``; the call was aborted."""


class CertificateRejected(ConfigError):
    """The trunk's TLS certificate failed verification: a configuration error, never retried as transient.

    No INVITE reached the trunk, so the job it was for is not consumed; the
    worker stops taking the trunk's jobs as it does after an auth failure.
    """
