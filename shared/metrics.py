"""Every metric the dialer exports, defined once.

Labels are bounded vocabularies only (campaign, trunk, outcome, code, variant,
result, state, queue, worker); a phone number or a job id never becomes a label,
or one campaign would create a million time series.

Workers run as Celery prefork children. When ``PROMETHEUS_MULTIPROC_DIR`` is set
before this module is imported, prometheus-client keeps values in shared files
and :func:`serve` aggregates them, so one port serves the whole pool; gauges
declare how their per-process values combine.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client import multiprocess as _multiprocess

_SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60)
_TALK_BUCKETS = (1, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

CALLS = Counter("dialer_calls_total", "Finished call attempts by outcome.", ["campaign", "trunk", "outcome"])
SIP_RESPONSES = Counter(
    "dialer_sip_responses_total", "Final SIP responses to INVITE by status code.", ["trunk", "code"]
)
VARIANT_TRIES = Counter(
    "dialer_variant_tries_total",
    "Number-variant tries; result is accepted (the trunk routed it) or rejected (a format failure).",
    ["trunk", "variant", "result"],
)
REGISTRATIONS = Counter("dialer_registrations_total", "REGISTER transactions by result.", ["trunk", "result"])
REGISTER_RESPONSES = Counter(
    "dialer_register_responses_total",
    "Every REGISTER result (initial, refresh, retry) by SIP status code; 408 is also no answer at all.",
    ["trunk", "code"],
)
REGISTRATION_UP = Gauge(
    "dialer_registration_up",
    "1 while this worker's account on the trunk is registered.",
    ["trunk", "worker"],
    multiprocess_mode="liveall",
)
TRUNK_HEALTHY = Gauge(
    "dialer_trunk_healthy", "0 once a trunk rejected our credentials.", ["trunk"], multiprocess_mode="livemin"
)
LIVE_CALLS = Gauge("dialer_live_calls", "Calls in progress.", ["trunk", "worker"], multiprocess_mode="livesum")
POST_DIAL_DELAY = Histogram(
    "dialer_post_dial_delay_seconds", "INVITE to first 18x.", ["trunk"], buckets=_SETUP_BUCKETS
)
SETUP_TIME = Histogram(
    "dialer_setup_time_seconds", "INVITE to final response.", ["trunk"], buckets=_SETUP_BUCKETS
)
TALK_TIME = Histogram("dialer_talk_time_seconds", "Answer to hang-up.", ["campaign", "trunk"], buckets=_TALK_BUCKETS)
DISPATCH_LAG = Histogram(
    "dialer_dispatch_lag_seconds", "Job due time to INVITE.", ["trunk"], buckets=_LAG_BUCKETS
)
DISPATCHED = Counter("dialer_dispatched_total", "Jobs moved to the queue by a dispatcher.", ["campaign", "trunk"])
DUPLICATE_DELIVERIES = Counter(
    "dialer_duplicate_deliveries_total", "Dial messages dropped because the job was not claimable.", ["trunk"]
)
WORKER_LOST = Counter(
    "dialer_worker_lost_total", "Attempts whose worker died; recorded by the reaper.", ["campaign"]
)
REQUEUED = Counter(
    "dialer_requeued_total", "Queued jobs re-dispatched because their message was lost.", ["campaign"]
)
JOBS = Gauge("dialer_jobs", "Jobs by campaign and state.", ["campaign", "state"], multiprocess_mode="livemax")
QUEUE_DEPTH = Gauge("dialer_queue_depth", "Messages waiting in a broker queue.", ["queue"], multiprocess_mode="livemax")
CAMPAIGN_OPEN = Gauge(
    "dialer_campaign_open",
    "1 while a campaign is running and inside its calling window.",
    ["campaign"],
    multiprocess_mode="livemax",
)
# Call flows (issue 11): what answered calls did.
_FIRST_AUDIO_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5)
FLOW_OUTCOMES = Counter(
    "dialer_flow_outcomes_total", "Answered calls that ran a flow, by business outcome.", ["campaign", "outcome"]
)
FLOW_STEPS = Counter(
    "dialer_flow_steps_total", "Flow steps taken, by action and result.", ["campaign", "action", "result"]
)
TRANSFERS = Counter(
    "dialer_transfers_total", "Transfers by result (transferred, failed) and final SIP code.",
    ["campaign", "result", "code"],
)
AGENT_DISPOSITIONS = Counter(
    "dialer_agent_dispositions_total", "Calls an AI agent handled (stream steps), by the disposition it reported.",
    ["campaign", "disposition"],
)
DTMF_DIGITS = Counter("dialer_dtmf_digits_total", "DTMF digits received during flows.", ["campaign"])
FIRST_AUDIO = Histogram(
    "dialer_first_audio_seconds", "200 OK to the first RTP packet of prompt audio sent.", ["campaign"],
    buckets=_FIRST_AUDIO_BUCKETS,
)
# Answering-machine detection (issue 15): the amd step's verdicts; reason is shared.amd Reason or timeout/no_audio.
AMD_DECISIONS = Counter(
    "dialer_amd_decisions_total", "amd step verdicts, by decision (human, machine, notsure) and reason.",
    ["campaign", "decision", "reason"],
)
AMD_DECISION_SECONDS = Histogram(
    "dialer_amd_decision_seconds", "200 OK to the audio that settled the amd verdict.", ["campaign", "decision"],
    buckets=(0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6),
)
PROMPT_UNAVAILABLE = Counter(
    "dialer_prompt_unavailable_total", "Jobs given back undialled because a prompt could not be had.", ["campaign"]
)
UPLOAD_ROWS = Counter("dialer_upload_rows_total", "Uploaded rows by result.", ["result"])


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics; in multiprocess mode, the sum over every process of the pool."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=addr, registry=registry)
    else:
        start_http_server(port, addr=addr)


def mark_process_dead(pid: int) -> None:
    """Drop a dead pool child's live gauges so they stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
