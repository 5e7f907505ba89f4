"""The PBX's call log: one record per INVITE transaction, readable from any thread.

Tests and the demo want to know what the PBX did (which number, which final
code, who hung up) without parsing logs, and they want to wait for it without
sleeping: ``CallLog.wait_for`` blocks on a condition that every change
notifies. The server thread writes; any thread reads snapshots.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class EndedBy(StrEnum):
    """Who ended an established (or ringing) call."""

    CALLER = "caller"  # BYE from the caller
    PBX = "pbx"  # BYE from the PBX after hangup_after_s, or because no ACK came
    CANCEL = "cancel"  # CANCEL before an answer
    NO_ANSWER = "no_answer"  # the PBX's no-answer timer ran out while it rang (480)


@dataclass(frozen=True)
class CallRecord:
    """One INVITE transaction: a 407 challenge and the authenticated retry are two records."""

    call_id: str
    number: str
    started_at: datetime
    final_code: int | None = None  # None while it is still ringing
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: EndedBy | None = None
    heard_s: float | None = None  # seconds of sound the callee heard (answered calls with media)
    pressed: str = ""  # keys the callee pressed
    transfer: str | None = None  # "accepted <Refer-To>" / "refused <Refer-To>" for a REFER
    recording: str | None = None  # the WAV of what the callee heard, when recording


def utc_now() -> datetime:
    """Timestamps in the log are timezone-aware UTC."""
    return datetime.now(UTC)


class CallLog:
    """Append-and-update list of CallRecord with a condition to wait on."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._changed = threading.Condition()

    def add(self, record: CallRecord) -> int:
        """Append a record; the returned index is how the server updates it later."""
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()
            return len(self._records) - 1

    def update(self, index: int, **changes: object) -> None:
        """Replace fields of the record at ``index`` (records themselves stay immutable)."""
        with self._changed:
            self._records[index] = dataclasses.replace(self._records[index], **changes)  # type: ignore[arg-type]
            self._changed.notify_all()

    def get(self, index: int) -> CallRecord:
        """The record at ``index`` as it is now."""
        with self._changed:
            return self._records[index]

    def snapshot(self) -> list[CallRecord]:
        """A copy of all records, oldest first."""
        with self._changed:
            return list(self._records)

    def wait_for(self, predicate: Callable[[list[CallRecord]], bool], timeout: float) -> bool:
        """Block until ``predicate(snapshot)`` holds or ``timeout`` seconds pass; returns whether it held."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self._records)), timeout)


def callee_story(record: CallRecord) -> str:
    """What an answered callee heard and did, for the demo: "heard 3.1 s of prompt, pressed 1, transferred to advisors".

    Empty for a call nobody answered. "heard nothing" is the silent call the
    dialer must never make.
    """
    if record.answered_at is None:
        return ""
    parts = []
    if record.heard_s is not None:
        parts.append(f"heard {record.heard_s:.1f} s of prompt" if record.heard_s > 0 else "heard nothing")
    if record.pressed:
        parts.append(f"pressed {record.pressed}")
    if record.transfer:
        verdict, _, target = record.transfer.partition(" ")
        who = _user_of(target) or "the transfer target"
        parts.append(f"transferred to {who}" if verdict == "accepted" else f"refused the transfer to {who}")
    return ", ".join(parts)


def _user_of(refer_to: str) -> str:
    """``<sip:advisors@host>`` -> ``advisors``."""
    uri = refer_to.strip().strip("<>").split(";", 1)[0]
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0] if "@" in rest else ""
