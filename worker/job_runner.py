"""``dial(job_id)`` without Celery: claim, check, call, record. The task is a thin wrapper.

Order matters for at-most-once dialling and for never losing an outcome:
1. claim in Postgres (a duplicate delivery stops here, before any INVITE);
2. re-check campaign, DNC, toll-fraud guard and calling window;
3. dial the variants (worker.dialing), each try reported as it ends;
4. write every try and the job's new state in one transaction, retrying while
   Postgres is away (bounded), so a finished call's outcome is never dropped.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import psycopg
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from shared import metrics
from shared.job_states import JobStatus
from shared.numbers import NormalisedNumber, dial_variants, preferred_first
from shared.outcomes import Outcome
from shared.retry_policy import JobDecision, decide
from worker import flow_job, redis_state, store
from worker.dialing import SETUP_MARGIN_S, TRANSIENT_BUDGET_S, AttemptReport, Try, dial_number
from worker.lease import LeaseKeeper, renew_lease
from worker.precheck import PreDialFacts, Verdict, check_before_dial
from worker.prompts import PromptUnavailable
from worker.runtime import WorkerRuntime
from worker.sip import CallResult, RegistrationResult
from worker.sip.agent import ScriptFactory

log = logging.getLogger(__name__)

# How long a finished call's outcome waits for Postgres to come back before the task gives up.
RECORD_PATIENCE_S = 600.0
CLAIM_PATIENCE_S = 30.0
# Lease beyond ring timeout + hold: set-up of up to four variants, transient backoff, grace.
LEASE_EXTRA_S = 4 * SETUP_MARGIN_S + 2 * TRANSIENT_BUDGET_S
# Beyond ring time and the flow's longest run, what a flow job may spend on set-up, variants and backoff.
FLOW_JOB_MARGIN_S = 4 * SETUP_MARGIN_S + 2 * TRANSIENT_BUDGET_S
# The last call must be over this long before the lease ends.
LEASE_SAFETY_S = 5.0


class NotRegistered(Exception):
    """This process's trunk account is not registered: the message goes back to the queue."""


def _db_retry(patience_s: float) -> Retrying:
    return Retrying(
        retry=retry_if_exception_type(psycopg.OperationalError),
        stop=stop_after_delay(patience_s),
        wait=wait_exponential_jitter(multiplier=0.5, max=10.0),
        reraise=True,
    )


def run_dial_job(rt: WorkerRuntime, job_id: int) -> str:
    """Dial one job; returns the outcome word, or 'duplicate' / a pre-dial verdict."""
    if (rt.gate is not None and not rt.gate.is_open) or not rt.agent.can_call:
        reg = rt.agent.registration
        if reg is not None and reg.certificate_rejected and rt.gate is not None:
            rt.gate.close(reg.reason)  # a configuration error: stop taking the trunk's jobs, as after 401s
        raise NotRegistered(rt.trunk.name)

    job = _db_retry(CLAIM_PATIENCE_S)(lambda: _claim(rt, job_id))
    if job is None:
        metrics.DUPLICATE_DELIVERIES.labels(rt.trunk.name).inc()
        log.info("job %s: not claimable (duplicate delivery or no longer queued); dropped", job_id)
        return "duplicate"
    now = datetime.now(UTC)
    verdict = check_before_dial(_facts(job), now)
    if verdict.verdict is not Verdict.DIAL or verdict.number is None:
        _settle_without_call(rt, job, verdict.verdict, verdict.retry_at or now)
        log.info("job %s: %s (%s)", job_id, verdict.verdict.value, verdict.reason)
        return verdict.verdict.value

    dialled = _dial_with_flow(rt, job, verdict.number)
    if dialled is None:
        return "prompt_unavailable"
    report, rows, flow_facts = dialled
    decision = decide(report.outcome, job.attempt, job.policy, datetime.now(UTC))

    def record() -> bool:
        with rt.pool.connection() as conn:
            if report.auth_failed:
                store.flag_trunk(conn, rt.trunk.name, healthy=False, reason="INVITE rejected after re-register")
            if report.config_error:
                store.flag_trunk(conn, rt.trunk.name, healthy=False, reason=report.config_error[:200])
            # No INVITE left the process (the agent refused): the attempt does not count.
            return store.finish(conn, job, rt.name, rows, decision, undo_attempt=not rows)

    if not _db_retry(RECORD_PATIENCE_S)(record):
        log.error("job %s: lease lost before the outcome was written; the reaper recorded it", job_id)
    _count(rt, job, report)
    if flow_facts is not None:
        flow_job.count_flow(job.campaign, flow_facts)
    _close_gate_if_refused(rt, report)
    return report.outcome.value


def _close_gate_if_refused(rt: WorkerRuntime, report: AttemptReport) -> None:
    if report.auth_failed and rt.gate is not None:
        rt.gate.close("INVITE rejected with an auth failure after a re-register")
    if report.config_error and rt.gate is not None:  # e.g. the trunk's certificate is not trusted
        rt.gate.close(report.config_error)


def _claim(rt: WorkerRuntime, job_id: int) -> store.ClaimedJob | None:
    """Claim the job; None when another delivery has it.

    The reaper waits lease_grace_s past the lease. The claim's lease covers the whole call; it is cut to a
    short renewable one at once (LeaseKeeper renews it while the job runs), so a process killed right after
    its claim is found in seconds, not when its call could have ended.
    """
    with rt.pool.connection() as conn:
        job = store.claim(conn, job_id, rt.name, LEASE_EXTRA_S)
        if job is not None:
            renew_lease(conn, job.job_id, rt.name)
        return job


def _facts(job: store.ClaimedJob) -> PreDialFacts:
    return PreDialFacts(
        campaign_state=job.campaign_state, on_dnc=job.on_dnc, e164=job.e164, region=job.region,
        allowed_regions=tuple(job.allowed_regions), allowed_types=tuple(job.allowed_types),
        windows=job.windows, days=job.days, tz=job.tz, start_at=job.start_at, end_at=job.end_at,
    )


def _settle_without_call(rt: WorkerRuntime, job: store.ClaimedJob, verdict: Verdict, retry_at: datetime) -> None:
    terminal = {
        Verdict.CANCEL: JobDecision(JobStatus.CANCELLED, Outcome.CANCELLED, None),
        Verdict.SKIP_DNC: JobDecision(JobStatus.SKIPPED_DNC, Outcome.SKIPPED_DNC, None),
        Verdict.REFUSE_NUMBER: JobDecision(JobStatus.FAILED, Outcome.INVALID_NUMBER, None),
    }

    def settle() -> bool:
        with rt.pool.connection() as conn:
            if verdict in terminal:
                return store.finish(conn, job, rt.name, [], terminal[verdict], undo_attempt=True)
            return store.postpone(conn, job, rt.name, retry_at)

    _db_retry(RECORD_PATIENCE_S)(settle)


class _MeteredPlacer:
    """The agent, with the live-call gauge kept around each call."""

    def __init__(self, rt: WorkerRuntime) -> None:
        self._agent = rt.agent
        self._live = metrics.LIVE_CALLS.labels(rt.trunk.name, rt.name)

    def call(self, uri: str, *, ring_timeout_s: float, hold_s: float, timeout_s: float | None = None,
             script_factory: ScriptFactory | None = None) -> CallResult:
        self._live.inc()
        try:
            return self._agent.call(uri, ring_timeout_s=ring_timeout_s, hold_s=hold_s, timeout_s=timeout_s,
                                    script_factory=script_factory)
        finally:
            self._live.dec()

    def reregister(self, timeout_s: float = 10) -> RegistrationResult:
        return self._agent.reregister(timeout_s)

    def uri_for(self, user_part: str) -> str:
        return self._agent.uri_for(user_part)


def _dial_with_flow(
    rt: WorkerRuntime, job: store.ClaimedJob, number: NormalisedNumber
) -> tuple[AttemptReport, list[store.TryRow], flow_job.FlowFacts | None] | None:
    """Dial with the campaign's flow (if any) under a renewed lease; None when a prompt kept the call from leaving."""
    try:  # every prompt on this host before the INVITE, or no call at all
        plan = flow_job.prepare_flow(job.flow, job.metadata, rt.settings.data_dir, rt.pool, e164=job.e164,
                                     campaign=job.campaign)
    except PromptUnavailable as exc:
        reason = str(exc)
        _db_retry(RECORD_PATIENCE_S)(lambda: _give_back(rt, job, reason))
        log.warning("job %s: no call placed: %s", job.job_id, reason)
        return None
    with LeaseKeeper(rt.pool, job.job_id, rt.name):
        report = _dial(rt, job, number, plan)
        if plan is not None and plan.opt_out is not None:
            plan.opt_out.wait()
    rows = [to_row(t) for t in report.tries]
    return report, rows, _apply_flow(report, rows)


def _give_back(rt: WorkerRuntime, job: store.ClaimedJob, reason: str) -> bool:
    with rt.pool.connection() as conn:
        return flow_job.give_back(conn, job, rt.name, reason)


def _apply_flow(report: AttemptReport, rows: list[store.TryRow]) -> flow_job.FlowFacts | None:
    """The answered try's flow decides the attempt's business outcome and fills its CDR columns."""
    for index, done in enumerate(report.tries):
        if done.result.answered and done.result.flow is not None:
            facts = flow_job.flow_facts(done.result.flow, report.outcome)
            rows[index] = flow_job.with_flow(rows[index], facts)
            report.outcome = facts.outcome
            return facts
    return None


def _dial(
    rt: WorkerRuntime, job: store.ClaimedJob, number: NormalisedNumber, plan: flow_job.FlowPlan | None = None
) -> AttemptReport:
    remembered = redis_state.preferred_variant(rt.redis, rt.trunk.name, number.country_code)
    variants = preferred_first(dial_variants(number, job.region, rt.trunk.variant_order), remembered)
    # A flow job's time budget is its own (ring, the flow's longest run, set-up of every variant): the
    # LeaseKeeper renews the lease for as long as the call is live. A plain hold keeps to its claim's lease.
    flow_s = plan.max_after_answer_s if plan is not None else 0.0
    budget_s = (job.ring_timeout_s + flow_s + FLOW_JOB_MARGIN_S if plan is not None
                else (job.lease_until - job.claimed_at).total_seconds())
    deadline = time.monotonic() + budget_s - LEASE_SAFETY_S
    trunk = rt.trunk.name
    first = [True]

    def on_try(done: Try) -> None:
        result = done.result
        if first[0] and job.due_at is not None and result.invite_at is not None:
            metrics.DISPATCH_LAG.labels(trunk).observe(max(0.0, (result.invite_at - job.due_at).total_seconds()))
            first[0] = False
        metrics.SIP_RESPONSES.labels(trunk, str(result.status or 0)).inc()
        accepted = done.outcome is not Outcome.NOT_FOUND
        metrics.VARIANT_TRIES.labels(trunk, done.variant.kind.value, "accepted" if accepted else "rejected").inc()
        if result.post_dial_delay_s is not None:
            metrics.POST_DIAL_DELAY.labels(trunk).observe(result.post_dial_delay_s)
        if result.setup_s is not None:
            metrics.SETUP_TIME.labels(trunk).observe(result.setup_s)
        redis_state.count_final_response(rt.redis, trunk, result.status)
        log.info("job %s try %s %s -> %s %s (%s)", job.job_id, done.index, done.variant.kind.value,
                 result.status, result.reason, done.outcome.value)

    report = dial_number(_MeteredPlacer(rt), variants, ring_timeout_s=job.ring_timeout_s,
                         hold_s=flow_s if plan is not None else job.hold_s, deadline=deadline, on_try=on_try,
                         script_factory=plan.factory if plan is not None else None)
    if report.accepted_variant is not None:
        redis_state.remember_variant(rt.redis, trunk, number.country_code, report.accepted_variant)
    return report


def to_row(done: Try) -> store.TryRow:
    r = done.result
    return store.TryRow(
        try_index=done.index, variant=done.variant.kind.value, uri=r.uri, call_id=r.call_id or None,
        status=r.status or None, reason=r.reason or None,
        provisional=[{"code": code, "at": at.isoformat()} for code, at in r.provisional],
        invite_at=r.invite_at, first_provisional_at=r.first_provisional_at, answer_at=r.answer_at,
        end_at=r.end_at, duration_s=r.talk_s if r.answered else None, hangup_by=r.hangup_by,
        outcome=done.outcome,
    )


def _count(rt: WorkerRuntime, job: store.ClaimedJob, report: AttemptReport) -> None:
    metrics.CALLS.labels(job.campaign, rt.trunk.name, report.outcome.value).inc()
    for done in report.tries:
        if done.result.answered:
            metrics.TALK_TIME.labels(job.campaign, rt.trunk.name).observe(done.result.talk_s)
