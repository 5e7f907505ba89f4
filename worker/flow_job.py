"""A dial job's flow: prompts ready before the INVITE, opt-outs written at once, the CDR's flow columns.

The job path (worker/job_runner.py) calls three things from here:
- :func:`prepare_flow` before dialling: the campaign's flow with every prompt
  on local disk, or :class:`~worker.prompts.PromptUnavailable` (then no call
  is placed, the job goes back and the campaign is flagged with the reason);
- the plan's ``factory`` goes to the SIP agent, which runs it on answer;
- :func:`flow_facts` after the call: the business outcome and CDR columns
  taken from ``CallResult.flow``.
An opt-out pressed during the call is written to the DNC list by a short
thread while the call goes on (the SIP thread never waits for Postgres), so
the number is skipped fleet-wide before the call has even ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from shared import metrics
from shared.db.prompts import fetch_prompt, store_rendered
from shared.flow.model import Flow
from shared.outcomes import Outcome
from worker.flow_runner import FlowScript, script_factory
from worker.prompts import PromptCache, PromptUnavailable, resolve_prompts
from worker.store import ClaimedJob, TryRow, postpone

log = logging.getLogger(__name__)

OPT_OUT_PATIENCE_S = 120.0
PROMPT_RETRY_S = 60.0  # a job whose prompt was missing is due again after this


class DbPromptSource:
    """The ``prompts`` table through the worker's pool; an unreachable database is an unavailable prompt."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool

    def fetch(self, sha: str) -> bytes | None:
        try:
            with self._pool.connection(timeout=10) as conn:
                return fetch_prompt(conn, sha)
        except (psycopg.Error, TimeoutError) as exc:
            raise PromptUnavailable(f"the prompts table is unreachable ({type(exc).__name__})") from None

    def store_rendered(self, sha: str, voice: str, text: str, audio: bytes) -> None:
        try:
            with self._pool.connection(timeout=10) as conn:
                store_rendered(conn, sha, voice, text, audio)
        except (psycopg.Error, TimeoutError) as exc:  # this host has it cached; others render it themselves
            log.warning("rendered prompt %s not stored for the fleet: %s", sha[:12], type(exc).__name__)


@dataclass
class OptOutWriter:
    """Puts the job's number on the DNC list from a thread of its own, as soon as the callee asks."""

    pool: ConnectionPool[Any]
    e164: str
    campaign: str
    threads: list[threading.Thread] = field(default_factory=list)
    written: bool = False

    def submit(self) -> None:
        thread = threading.Thread(target=self._write, name="opt-out", daemon=True)
        self.threads.append(thread)
        thread.start()

    def wait(self, timeout_s: float = OPT_OUT_PATIENCE_S) -> None:
        for thread in self.threads:
            thread.join(timeout_s)

    def _write(self) -> None:
        from producer.dnc import add_dnc  # the DNC rules live there once

        def write() -> None:
            with self.pool.connection() as conn:
                add_dnc(conn, self.e164, reason=f"opted out during a call (campaign {self.campaign})")

        try:
            Retrying(retry=retry_if_exception_type(psycopg.OperationalError), stop=stop_after_delay(OPT_OUT_PATIENCE_S),
                     wait=wait_exponential_jitter(multiplier=0.5, max=10.0), reraise=True)(write)
            self.written = True
        except Exception:
            log.exception("opt-out of a %s number not written to the DNC list", self.campaign)


@dataclass(frozen=True)
class FlowPlan:
    flow: Flow
    factory: Callable[[], FlowScript]
    opt_out: OptOutWriter | None = None

    @property
    def max_after_answer_s(self) -> float:
        """The longest an answered call may last: the flow's own limit."""
        return self.flow.max_duration_s


def prepare_flow(
    stored: Mapping[str, Any] | None, metadata: Mapping[str, Any], data_dir: Path, pool: ConnectionPool[Any],
    *, e164: str, campaign: str,
) -> FlowPlan | None:
    """The campaign's flow ready to run (None when it has none); PromptUnavailable when a prompt is missing."""
    if stored is None:
        return None
    flow = Flow.from_json(stored)
    prompts = resolve_prompts(flow, metadata, PromptCache(data_dir), DbPromptSource(pool))
    opt_out = OptOutWriter(pool, e164, campaign)
    stream_params = {"campaign": campaign, **{str(k): str(v) for k, v in metadata.items()}}  # a stream's start
    factory = script_factory(flow, prompts, on_opt_out=opt_out.submit, recordings_dir=Path(data_dir) / "recordings",
                             stream_params=stream_params)
    return FlowPlan(flow, factory, opt_out)


@dataclass(frozen=True, slots=True)
class FlowFacts:
    """What an answered call's flow adds to its CDR row."""

    outcome: Outcome
    steps: list[dict[str, Any]] | None = None
    digits: str | None = None
    transfer_target: str | None = None
    transfer_status: int | None = None
    recording: str | None = None
    first_audio_s: float | None = None
    amd: Mapping[str, Any] | None = None  # {"decision", "reason", "decided_at_s", "detail"} of the amd step


def flow_facts(report: Mapping[str, Any] | None, answered_outcome: Outcome) -> FlowFacts:
    """The business outcome and CDR columns of ``CallResult.flow`` (``answered_outcome`` when there is none)."""
    if not report:
        return FlowFacts(answered_outcome)
    try:
        outcome = Outcome(str(report.get("outcome")))
    except ValueError:  # the script failed before deciding: the call was answered, no more is known
        outcome = answered_outcome
    steps = list(report.get("steps") or [])
    if report.get("error"):
        steps.append({"step": None, "action": "error", "result": str(report["error"]), "at_s": None})
    return FlowFacts(
        outcome=outcome, steps=steps, digits=report.get("digits") or None,
        transfer_target=report.get("transfer_target"), transfer_status=report.get("transfer_status"),
        recording=report.get("recording"), first_audio_s=report.get("first_audio_s"),
        amd=report.get("amd") if isinstance(report.get("amd"), Mapping) else None,
    )


def with_flow(row: TryRow, facts: FlowFacts) -> TryRow:
    """The CDR row of the answered try, with the flow's outcome and columns."""
    return replace(row, outcome=facts.outcome, flow_steps=facts.steps, digits=facts.digits,
                   transfer_target=facts.transfer_target, transfer_status=facts.transfer_status,
                   recording=facts.recording, first_audio_s=facts.first_audio_s, **amd_columns(facts.amd))


def amd_columns(amd: Mapping[str, Any] | None) -> dict[str, Any]:
    """The CDR's amd columns of the flow report's ``amd`` entry (all None without an amd step)."""
    if not amd:
        return {"amd_decision": None, "amd_reason": None, "amd_decided_at_s": None}
    at = amd.get("decided_at_s")
    return {"amd_decision": amd.get("decision"), "amd_reason": amd.get("reason"),
            "amd_decided_at_s": float(at) if isinstance(at, int | float) else None}


def give_back(conn: psycopg.Connection[Any], job: ClaimedJob, worker: str, reason: str) -> bool:
    """No call was placed (a prompt is missing): the job waits and the campaign says why, in one transaction."""
    retry_at = datetime.now(UTC) + timedelta(seconds=PROMPT_RETRY_S)
    given = postpone(conn, job, worker, retry_at)
    with conn.transaction():
        conn.execute(
            "UPDATE campaigns SET flagged_reason = %s, flagged_at = now(), updated_at = now() WHERE id = %s",
            (f"no call placed: {reason}"[:500], job.campaign_id),
        )
    metrics.PROMPT_UNAVAILABLE.labels(job.campaign).inc()
    return given


def disposition_label(value: object) -> str:
    """A metric label from an agent's disposition: the parser already keeps it a short word; none says so."""
    return value if isinstance(value, str) and value and len(value) <= 32 else "none"


def count_flow(campaign: str, facts: FlowFacts) -> None:
    """Flow metrics of one answered call (labels: campaign and bounded vocabularies only)."""
    metrics.FLOW_OUTCOMES.labels(campaign, facts.outcome.value).inc()
    for step in facts.steps or []:
        action, result = str(step.get("action")), str(step.get("result"))
        metrics.FLOW_STEPS.labels(campaign, action, result).inc()
        if action == "transfer" and result in ("transferred", "failed"):
            metrics.TRANSFERS.labels(campaign, result, str(step.get("status") or 0)).inc()
    for step in facts.steps or []:
        if step.get("action") == "stream" and step.get("result") != "agent_unavailable":
            metrics.AGENT_DISPOSITIONS.labels(campaign, disposition_label(step.get("disposition"))).inc()
    if facts.digits:
        metrics.DTMF_DIGITS.labels(campaign).inc(len(facts.digits))
    if facts.first_audio_s is not None:
        metrics.FIRST_AUDIO.labels(campaign).observe(facts.first_audio_s)
    if facts.amd and facts.amd.get("decision") in ("human", "machine", "notsure"):
        decision = str(facts.amd["decision"])
        metrics.AMD_DECISIONS.labels(campaign, decision, str(facts.amd.get("reason"))).inc()
        at = facts.amd.get("decided_at_s")
        if isinstance(at, int | float):
            metrics.AMD_DECISION_SECONDS.labels(campaign, decision).observe(float(at))
