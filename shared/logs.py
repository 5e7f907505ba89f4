"""Logging set-up with a last line of defence for secrets.

Code never logs a password on purpose; this filter makes sure an accident (a
library that prints a URL with credentials, an exception that carries a config
object) does not leak one either: every registered secret value is replaced by
``***`` in the final message, and ``user:password@`` in URLs is masked.
"""

from __future__ import annotations

import logging
import re
import sys
import threading

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@", re.I)
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line. Short values are ignored (too many false hits)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.exc_info:
            if record.exc_info:
                formatted = logging.Formatter().formatException(record.exc_info)
                cleaned = f"{cleaned}\n{redact(formatted)}"
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = cleaned, None
        return True


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr, one line per event, every handler behind the redacting filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
