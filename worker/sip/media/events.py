"""Facts a call's pjsua callbacks record for the SIP loop to act on: plain data, no pjsua.

Callbacks append these to the call's mailbox list and return; the runtime
drains the list on the same thread in its tick and hands them to the call's
:class:`~worker.sip.media.control.CallMedia`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DtmfMethod = Literal["rfc2833", "info"]


@dataclass(frozen=True)
class DtmfEvent:
    """One DTMF report. ``start`` is the tone's beginning (the digit is known then);
    ``duration_ms`` is set on the report that ends it (0 when unknown)."""

    digit: str
    method: DtmfMethod
    start: bool
    end: bool
    duration_ms: int
    at: float


@dataclass(frozen=True)
class TransferStatus:
    """A NOTIFY sipfrag (or the REFER's own final response) for our blind transfer."""

    code: int
    reason: str
    final: bool
    at: float


@dataclass(frozen=True)
class MediaChanged:
    """The call's media state changed: its audio stream is up, on hold or gone."""

    active: bool
    at: float


CallEvent = DtmfEvent | TransferStatus | MediaChanged
