"""Campaigns: create, look up, change state, report progress. Plain functions over a psycopg connection.

The CLI, the HTTP API and the demo all call these, so every rule lives here
once: options are checked before a row exists (a calling window of
``25:00-26:00`` or an unknown time zone is refused with the reason), and the
campaign's state machine is enforced by conditional UPDATEs, so two operators
pausing and cancelling at once cannot produce a state neither asked for::

    draft --start--> running <--pause/resume--> paused
    draft | running | paused --cancel--> cancelled        (finished: set by the dispatcher)

Cancelling marks the jobs that are not yet dialling (pending, queued,
retry_wait) ``cancelled``; a ``dialing`` job is left alone, because a live
call is never cut, and the worker re-checks the campaign state before each
INVITE, so nothing new starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from croniter import croniter
from psycopg import Connection, errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from producer.campaign_spec import CampaignSpec, FlowSpec
from shared.db.prompts import store_wavs
from shared.errors import ConfigError
from shared.flow.load import LoadedFlow
from shared.flow.model import FlowError
from shared.job_states import CANCELLABLE, JobStatus
from shared.numbers import parse_number_types
from shared.outcomes import ANSWERED_OUTCOMES, RETRYABLE_OUTCOMES, Outcome
from shared.schedule import CallingWindow

if TYPE_CHECKING:  # producer.upload imports this module; importing it back at run time would be a cycle
    from producer.upload.validate import NumberPolicy

__all__ = [
    "Campaign", "CampaignNotFound", "CampaignSpec", "FlowSpec", "IllegalTransition", "campaign_status",
    "change_state", "check_flow", "create_campaign", "flag_campaign", "get_campaign", "list_campaigns",
    "parse_when",
]

Action = Literal["start", "pause", "resume", "cancel"]
# action -> (states it may start from, state it leads to)
TRANSITIONS: Mapping[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "cancel": (frozenset({"draft", "running", "paused"}), "cancelled"),
}
_HINTS = {
    ("start", "paused"): "use resume",
    ("start", "running"): "it is already running",
    ("pause", "draft"): "start it first",
    ("pause", "paused"): "it is already paused",
    ("resume", "running"): "it is already running",
    ("resume", "draft"): "use start",
}
PACE_WINDOW = timedelta(minutes=15)  # how far back "the current pace" looks
_STILL_TO_DIAL = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.DIALING, JobStatus.RETRY_WAIT)


class CampaignNotFound(ConfigError):
    """No campaign has that name."""


class IllegalTransition(ConfigError):
    """The campaign's state does not allow the requested action."""


@dataclass(frozen=True)
class Campaign:
    """A ``campaigns`` row."""

    id: int
    name: str
    trunk: str
    state: str
    region: str
    tz: str
    windows: str
    days: str
    start_at: datetime | None
    end_at: datetime | None
    recur_cron: str | None
    max_attempts: int
    retry_delays: dict[str, float]
    max_concurrent: int
    cps: float
    ring_timeout_s: float
    hold_s: float
    allowed_regions: tuple[str, ...]
    allowed_types: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    flow: dict[str, Any] | None = None  # shared.flow Flow.to_json(); None: hold_s, then BYE
    flagged_reason: str | None = None  # why a worker could not run this campaign's calls
    flagged_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Campaign:
        values = dict(row)
        values["allowed_regions"] = tuple(values["allowed_regions"])
        values["allowed_types"] = tuple(values["allowed_types"])
        return cls(**values)

    def number_policy(self) -> NumberPolicy:
        """Which numbers uploads to this campaign may hold."""
        from producer.upload.validate import NumberPolicy

        return NumberPolicy.for_campaign(self.region, self.allowed_regions, self.allowed_types)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items()}
        for key in ("start_at", "end_at", "created_at", "updated_at", "flagged_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        data["allowed_regions"] = list(self.allowed_regions)
        data["allowed_types"] = list(self.allowed_types)
        return data


_COLUMNS = tuple(name for name in Campaign.__dataclass_fields__)


def create_campaign(conn: Connection[Any], spec: CampaignSpec) -> int:
    """Check ``spec`` (its flow included) and insert the campaign in state ``draft``; returns its id.

    The flow's WAVs are stored in ``prompts`` in the same transaction, so a
    campaign never exists without the audio its flow plays.
    """
    checked = check_spec(spec)
    loaded = check_flow(spec)
    values = {
        "name": checked.name, "trunk": checked.trunk, "region": checked.region, "tz": checked.tz,
        "windows": checked.windows, "days": checked.days, "start_at": checked.start_at, "end_at": checked.end_at,
        "recur_cron": checked.recur_cron, "max_attempts": checked.max_attempts,
        "retry_delays": Jsonb({o.value: d.total_seconds() for o, d in checked.retry_delays.items()}),
        "max_concurrent": checked.max_concurrent, "cps": checked.cps, "ring_timeout_s": checked.ring_timeout_s,
        "hold_s": checked.hold_s, "allowed_regions": list(checked.allowed_regions),
        "allowed_types": list(checked.allowed_types),
        "flow": Jsonb(loaded.flow.to_json()) if loaded is not None else None,
    }
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({k})s" for k in values)
    try:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO campaigns ({columns}) VALUES ({placeholders}) RETURNING id".encode(), values
            ).fetchone()
            if loaded is not None:
                store_wavs(conn, loaded.wavs)
    except errors.UniqueViolation:
        raise ConfigError(f"a campaign named {spec.name!r} already exists; pick another name") from None
    assert row is not None
    return int(row[0])


def get_campaign(conn: Connection[Any], name: str) -> Campaign:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM campaigns WHERE name = %s".encode(), (name,)
        ).fetchone()
    if row is None:
        raise CampaignNotFound(f"no campaign named {name!r}; `dialer campaign list` shows them")
    return Campaign.from_row(row)


def check_flow(spec: CampaignSpec) -> LoadedFlow | None:
    """The spec's flow loaded and validated, or FlowError naming the campaign, step and problem."""
    if spec.flow is None:
        return None
    try:
        return spec.flow.load()
    except FlowError as exc:
        raise FlowError(f"campaign {spec.name!r}: {exc}") from None


def flag_campaign(conn: Connection[Any], campaign_id: int, reason: str | None) -> None:
    """Record (or, with None, clear) why a worker could not run this campaign's calls."""
    with conn.transaction():
        conn.execute(
            "UPDATE campaigns SET flagged_reason = %s, flagged_at = CASE WHEN %s::text IS NULL THEN NULL"
            " ELSE now() END, updated_at = now() WHERE id = %s",
            (reason, reason, campaign_id),
        )


def list_campaigns(conn: Connection[Any]) -> list[Campaign]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM campaigns ORDER BY id".encode()).fetchall()
    return [Campaign.from_row(row) for row in rows]


def change_state(conn: Connection[Any], name: str, action: Action) -> str:
    """Apply start, pause, resume or cancel; returns the new state or raises IllegalTransition."""
    if action not in TRANSITIONS:
        raise ConfigError(f"unknown campaign action {action!r}; use one of {', '.join(TRANSITIONS)}")
    allowed, new_state = TRANSITIONS[action]
    with conn.transaction():
        row = conn.execute(
            "UPDATE campaigns SET state = %s, updated_at = now() WHERE name = %s AND state = ANY(%s)"
            " RETURNING id",
            (new_state, name, sorted(allowed)),
        ).fetchone()
        if row is None:
            current = get_campaign(conn, name).state
            hint = _HINTS.get((action, current), "")
            raise IllegalTransition(
                f"cannot {action} campaign {name!r}: it is {current}" + (f"; {hint}" if hint else "")
            )
        if action == "cancel":
            conn.execute(
                "UPDATE dial_jobs SET status = %s, outcome = %s, updated_at = now()"
                " WHERE campaign_id = %s AND status = ANY(%s)",
                (JobStatus.CANCELLED.value, Outcome.CANCELLED.value, row[0], sorted(s.value for s in CANCELLABLE)),
            )
    return new_state


def campaign_status(conn: Connection[Any], name: str) -> dict[str, Any]:
    """Counts by job state and outcome, attempts, answer rate and an ETA at the current pace.

    ``attempts`` counts call attempts (a job's attempt with all its number
    variants is one). The pace is the attempts that ended in the last
    PACE_WINDOW (or since the first attempt, when that is more recent), and
    ``eta_s`` is the jobs still to dial divided by it: a lower bound, since
    some of them will need retries. None when there is no pace to go by.
    """
    campaign = get_campaign(conn, name)
    jobs = {status.value: 0 for status in JobStatus}
    for status, count in conn.execute(
        "SELECT status, count(*) FROM dial_jobs WHERE campaign_id = %s GROUP BY status", (campaign.id,)
    ):
        jobs[status] = int(count)
    outcomes = {
        str(outcome): int(count)
        for outcome, count in conn.execute(
            "SELECT outcome, count(*) FROM dial_jobs WHERE campaign_id = %s AND outcome IS NOT NULL"
            " GROUP BY outcome ORDER BY outcome",
            (campaign.id,),
        )
    }
    row = conn.execute(
        "SELECT count(DISTINCT (job_id, attempt)),"
        "       count(DISTINCT (job_id, attempt)) FILTER (WHERE outcome = ANY(%s)),"
        "       count(DISTINCT (job_id, attempt)) FILTER (WHERE coalesce(end_at, created_at) > now() - %s),"
        "       extract(epoch FROM now() - min(coalesce(end_at, created_at)))"
        " FROM call_attempts WHERE campaign_id = %s",
        (sorted(o.value for o in ANSWERED_OUTCOMES), PACE_WINDOW, campaign.id),
    ).fetchone()
    assert row is not None
    attempts, answered, recent, since_first = int(row[0]), int(row[1]), int(row[2]), row[3]
    remaining = sum(jobs[s.value] for s in _STILL_TO_DIAL)
    window_s = min(PACE_WINDOW.total_seconds(), max(float(since_first or 0.0), 60.0))
    pace = recent / window_s if recent else 0.0
    eta: float | None = 0.0 if remaining == 0 else (round(remaining / pace, 1) if pace > 0 else None)
    return {
        "campaign": campaign.name,
        "id": campaign.id,
        "state": campaign.state,
        "trunk": campaign.trunk,
        "jobs": jobs,
        "total_jobs": sum(jobs.values()),
        "remaining": remaining,
        "outcomes": outcomes,
        "attempts": attempts,
        "answered": answered,
        "answer_rate": round(answered / attempts, 4) if attempts else None,
        "pace_per_min": round(pace * 60, 2),
        "eta_s": eta,
        "flagged_reason": campaign.flagged_reason,
    }


# ---------------------------------------------------------------------------------------------
# Checking options (pure)

_TRUNK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
ALL_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def parse_when(text: str, tz: str) -> datetime:
    """An ISO 8601 time; one written without an offset is in the campaign's time zone ``tz``."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2030-06-01T09:30+08:00") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(tz))


def check_spec(spec: CampaignSpec) -> CampaignSpec:
    """The spec with its lists normalised, or ConfigError naming the first bad option and why."""
    try:
        return _checked(spec)
    except ValueError as exc:
        raise ConfigError(f"campaign {spec.name!r}: {exc}") from None


def _checked(spec: CampaignSpec) -> CampaignSpec:  # noqa: C901  # one flat list of independent checks
    name = spec.name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise ValueError("name: use 1-200 printable characters")
    if not _TRUNK_NAME.fullmatch(spec.trunk):
        raise ValueError(f"trunk {spec.trunk!r}: letters, digits, '_', '.' and '-' only")
    region = spec.region.upper()
    if region not in ALL_REGIONS:
        raise ValueError(f"region {spec.region!r} is not an ISO 3166 region code such as CN")
    try:
        ZoneInfo(spec.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {spec.tz!r} is unknown; use an IANA name such as Asia/Shanghai") from None
    _check_window(spec.windows, spec.days, spec.tz)
    start_at = _aware(spec.start_at, spec.tz)
    end_at = _aware(spec.end_at, spec.tz)
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise ValueError("end-at must be later than start-at")
    if spec.recur_cron is not None and not croniter.is_valid(spec.recur_cron):
        raise ValueError(f"recur {spec.recur_cron!r} is not a cron expression such as '0 10 * * mon-fri'")
    for label, value, low, high in (
        ("max-attempts", spec.max_attempts, 1, 100), ("max-concurrent", spec.max_concurrent, 1, 10_000),
        ("cps", spec.cps, 0.01, 1_000), ("ring-timeout", spec.ring_timeout_s, 1, 600), ("hold", spec.hold_s, 0, 3600),
    ):
        if not low <= value <= high:
            raise ValueError(f"{label} {value} is out of range ({low}-{high})")
    for outcome, delay in spec.retry_delays.items():
        if Outcome(outcome) not in RETRYABLE_OUTCOMES:
            raise ValueError(f"retry-delay: {Outcome(outcome).value!r} is never retried")
        if delay <= timedelta(0):
            raise ValueError(f"retry-delay for {Outcome(outcome).value}: must be positive")
    regions = tuple(sorted({r.strip().upper() for r in spec.allowed_regions if r.strip()}))
    unknown = [r for r in regions if r not in ALL_REGIONS]
    if unknown:
        raise ValueError(f"allow-regions: unknown region(s) {', '.join(unknown)}")
    types = tuple(sorted(t.value for t in parse_number_types(",".join(spec.allowed_types))))
    return spec.model_copy(update={"name": name, "region": region, "start_at": start_at, "end_at": end_at,
                                   "allowed_regions": regions, "allowed_types": types,
                                   "windows": spec.windows.strip()})


def _aware(value: datetime | None, tz: str) -> datetime | None:
    return value.replace(tzinfo=ZoneInfo(tz)) if value is not None and value.tzinfo is None else value


def _check_window(windows: str, days: str, tz: str) -> None:
    """Calling window and days, parsed by the same code the dispatcher uses to open them."""
    CallingWindow.parse(windows, days, tz)
