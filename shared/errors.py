"""The one error tree of sip-dialer.

Callers decide by branch, not by message: a retryable error may succeed if the
same thing is tried later; a permanent one never will, and retrying it only
burns a lead or hammers a trunk.

    DialerError
    ├── RetryableError
    │   ├── TransientSipError        5xx, timeouts, transport failures
    │   ├── DatabaseUnavailable      Postgres down or unreachable
    │   └── CapacityExceeded         this process is at its call or pace limit
    └── PermanentError
        ├── ConfigError              a setting is missing or malformed
        ├── InvalidNumber            a phone number that cannot be dialled
        ├── AuthRejected             the trunk refused our credentials
        └── BadUpload                an upload file that cannot be read at all
"""

from __future__ import annotations


class DialerError(Exception):
    """Root of every error the dialer raises on purpose."""


class RetryableError(DialerError):
    """The same operation may succeed later."""


class PermanentError(DialerError):
    """Retrying the same operation cannot help."""


class TransientSipError(RetryableError):
    """A SIP failure that a later attempt may not see (5xx, timeout, transport)."""


class DatabaseUnavailable(RetryableError):
    """Postgres could not be reached; the caller should back off."""


class CapacityExceeded(RetryableError):
    """This process is at its concurrent-call or call-start pace limit."""


class ConfigError(PermanentError):
    """A setting is missing or malformed; the message names the variable."""


class InvalidNumber(PermanentError):
    """A phone number that cannot be dialled; the message says why."""

    def __init__(self, raw: str, reason: str) -> None:
        super().__init__(f"{raw!r}: {reason}")
        self.raw = raw
        self.reason = reason


class AuthRejected(PermanentError):
    """The trunk refused our credentials (401/403 on REGISTER, or on INVITE after a re-register)."""


class BadUpload(PermanentError):
    """An upload that cannot be read at all (no phone column, binary, wrong encoding)."""
