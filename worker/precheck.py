"""The checks right before an INVITE, as one pure decision.

A job can wait minutes between dispatch and dial (a retry, a backlog), and in
that time a campaign may be paused or cancelled, the number put on the DNC
list, or the calling window closed. Each of those stops the call here, before
any INVITE, and says what becomes of the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.errors import InvalidNumber
from shared.numbers import NormalisedNumber, normalise, parse_number_types
from shared.schedule import CallingWindow

# A paused campaign's jobs are looked at again after this long.
PAUSED_RECHECK = timedelta(minutes=1)


class Verdict(StrEnum):
    DIAL = "dial"
    POSTPONE = "postpone"      # give the job back, attempt not counted
    CANCEL = "cancel"          # campaign cancelled or over
    SKIP_DNC = "skip_dnc"      # number is on the do-not-call list
    REFUSE_NUMBER = "refuse"   # toll-fraud guard: number no longer allowed


@dataclass(frozen=True, slots=True)
class PreDial:
    verdict: Verdict
    reason: str = ""
    retry_at: datetime | None = None
    number: NormalisedNumber | None = None  # set when the verdict is DIAL


@dataclass(frozen=True, slots=True)
class PreDialFacts:
    campaign_state: str
    on_dnc: bool
    e164: str
    region: str
    allowed_regions: tuple[str, ...]
    allowed_types: tuple[str, ...]
    windows: str
    days: str
    tz: str
    start_at: datetime | None
    end_at: datetime | None


def check_before_dial(facts: PreDialFacts, now: datetime) -> PreDial:
    """What to do with a freshly claimed job, given its campaign and number as they are now."""
    if facts.campaign_state == "cancelled":
        return PreDial(Verdict.CANCEL, "campaign cancelled")
    if facts.on_dnc:
        return PreDial(Verdict.SKIP_DNC, "number is on the do-not-call list")
    if facts.campaign_state != "running":
        return PreDial(Verdict.POSTPONE, f"campaign is {facts.campaign_state}", now + PAUSED_RECHECK)
    try:
        number = normalise(
            facts.e164, facts.region,
            allowed_regions=frozenset(facts.allowed_regions) or None,
            allowed_types=parse_number_types(",".join(facts.allowed_types)),
        )
    except InvalidNumber as exc:
        return PreDial(Verdict.REFUSE_NUMBER, exc.reason)
    window = CallingWindow.parse(facts.windows, facts.days, facts.tz)
    if window.is_open(now, facts.start_at, facts.end_at):
        return PreDial(Verdict.DIAL, number=number)
    reopens = window.next_open(now, facts.start_at, facts.end_at)
    if reopens is None:
        return PreDial(Verdict.CANCEL, "campaign's calling period is over")
    return PreDial(Verdict.POSTPONE, "outside the calling window", reopens)
