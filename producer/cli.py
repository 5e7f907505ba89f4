"""Producer commands: ``dialer campaign ...``, ``dialer upload``, ``dialer dnc ...``, ``dialer enqueue``.

Thin: each command turns options into a call of producer.campaigns,
producer.upload or producer.dnc and prints the result, as text for a person
or as one JSON object with ``--json`` for scripts. Bad input raises a
DialerError, which ``shared.cli.main`` prints as one ``error: ...`` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from producer.campaigns import (
    CampaignSpec,
    FlowSpec,
    campaign_status,
    change_state,
    create_campaign,
    list_campaigns,
    parse_when,
)
from producer.cli_support import database, echo_json, option_error, progress
from shared.cli import settings
from shared.errors import ConfigError
from shared.retry_policy import parse_duration, parse_retry_delays

campaign_app = typer.Typer(help="Create campaigns; start, pause, resume, cancel them; see their progress.",
                           no_args_is_help=True)
dnc_app = typer.Typer(help="The do-not-call list: numbers that are never dialled, in any campaign.",
                      no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
PhoneColumn = Annotated[str | None, typer.Option(
    "--phone-column", help="Header of the phone column, when it is not called phone, mobile, 手机号 ...")]


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
    app.add_typer(dnc_app, name="dnc")
    app.command("upload")(upload)
    app.command("enqueue")(enqueue)


# --------------------------------------------------------------------------------------------- campaigns

@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Argument(help="Campaign name, unique.")],
    trunk: Annotated[str, typer.Option(help="Name of the SIP trunk that places the calls.")],
    region: Annotated[str, typer.Option(help="Region of numbers written without a country code.")] = "CN",
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the calling window.")] = "Asia/Shanghai",
    window: Annotated[str, typer.Option(help="Calling hours, e.g. 09:00-12:00,14:00-20:00 (empty: all day).")] = "",
    days: Annotated[str, typer.Option(help="Calling days, e.g. mon-fri or mon,wed,fri.")] = "mon-sun",
    start_at: Annotated[str | None, typer.Option(help="Do not dial before (ISO 8601; no offset = --tz).")] = None,
    end_at: Annotated[str | None, typer.Option(help="Do not dial after (ISO 8601; no offset = --tz).")] = None,
    recur: Annotated[str | None, typer.Option(help="Cron expression that re-opens remaining jobs.")] = None,
    max_attempts: Annotated[int, typer.Option(help="Call attempts per number, retries included.")] = 3,
    retry_delay: Annotated[str, typer.Option(help="Retry delays by outcome, e.g. busy=10m,no_answer=30m.")] = "",
    max_concurrent: Annotated[int, typer.Option(help="Calls in progress at once, at most.")] = 10,
    cps: Annotated[float, typer.Option(help="Call starts per second, at most.")] = 5.0,
    ring_timeout: Annotated[str, typer.Option(help="Hang up unanswered calls after, e.g. 45s.")] = "45s",
    hold: Annotated[str, typer.Option(help="Stay on answered calls for, e.g. 0s or 20s.")] = "0s",
    allow_regions: Annotated[str, typer.Option(help="Regions numbers may be in, e.g. CN,HK (default: --region).")] = "",
    allow_types: Annotated[str, typer.Option(help="Number types to dial.")] = "mobile,fixed_line",
    flow: Annotated[Path | None, typer.Option(
        help="Call flow run on answer: a TOML, YAML or JSON file (WAV paths relative to it).")] = None,
) -> None:
    """Create a campaign in state draft (upload numbers, then `dialer campaign start`)."""
    spec = CampaignSpec(
        name=name, trunk=trunk, region=region, tz=tz, windows=window, days=days,
        start_at=_when("--start-at", start_at, tz), end_at=_when("--end-at", end_at, tz), recur_cron=recur,
        max_attempts=max_attempts, retry_delays=_parse("--retry-delay", parse_retry_delays, retry_delay),
        max_concurrent=max_concurrent, cps=cps,
        ring_timeout_s=_parse("--ring-timeout", parse_duration, ring_timeout).total_seconds(),
        hold_s=_parse("--hold", parse_duration, hold).total_seconds(),
        allowed_regions=tuple(r for r in allow_regions.split(",") if r.strip()),
        allowed_types=tuple(t for t in allow_types.split(",") if t.strip()),
        flow=FlowSpec.from_file(flow) if flow is not None else None,
    )
    with database() as conn:
        campaign_id = create_campaign(conn, spec)
        known = {row[0] for row in conn.execute("SELECT name FROM trunks")}
    if trunk not in known | _configured_trunks():
        typer.echo(f"warning: trunk {trunk!r} is not configured yet; calls wait until it is", err=True)
    with_flow = f", flow {flow.name}" if flow is not None else ""
    typer.echo(f"created campaign {name!r} (id {campaign_id}, draft{with_flow}); next: dialer upload {name} FILE, "
               f"then dialer campaign start {name}")


def _configured_trunks() -> set[str]:
    try:
        return set(settings().all_trunks())
    except ConfigError:
        return set()


def _when(option: str, text: str | None, tz: str) -> Any:
    return None if text is None else _parse(option, lambda t: parse_when(t, tz), text)


def _parse(option: str, parser: Any, text: str) -> Any:
    try:
        return parser(text)
    except (ValueError, KeyError) as exc:
        raise option_error(option, exc) from None


def _transition(name: str, action: Any) -> None:
    with database() as conn:
        state = change_state(conn, name, action)
        extra = ""
        if action == "cancel":
            jobs = campaign_status(conn, name)["jobs"]
            extra = f" ({jobs['cancelled']} jobs cancelled; {jobs['dialing']} calls in progress finish normally)"
    typer.echo(f"campaign {name!r} is now {state}{extra}")


@campaign_app.command("start")
def campaign_start(name: Annotated[str, typer.Argument(help="Campaign name.")]) -> None:
    """Start dialling a draft campaign (inside its calling window)."""
    _transition(name, "start")


@campaign_app.command("pause")
def campaign_pause(name: Annotated[str, typer.Argument(help="Campaign name.")]) -> None:
    """Stop starting new calls; calls in progress finish."""
    _transition(name, "pause")


@campaign_app.command("resume")
def campaign_resume(name: Annotated[str, typer.Argument(help="Campaign name.")]) -> None:
    """Resume a paused campaign."""
    _transition(name, "resume")


@campaign_app.command("cancel")
def campaign_cancel(name: Annotated[str, typer.Argument(help="Campaign name.")]) -> None:
    """Cancel for good: jobs not yet dialling are cancelled; live calls are never cut."""
    _transition(name, "cancel")


@campaign_app.command("status")
def campaign_status_cmd(name: Annotated[str, typer.Argument(help="Campaign name.")], json: JsonFlag = False) -> None:
    """Jobs by state and outcome, attempts, answer rate and time to finish at the current pace."""
    with database() as conn:
        status = campaign_status(conn, name)
    if json:
        echo_json(status)
        return
    rate = "-" if status["answer_rate"] is None else f"{status['answer_rate']:.1%}"
    eta = "-" if status["eta_s"] is None else _duration(status["eta_s"])
    typer.echo(f"{status['campaign']}: {status['state']}, trunk {status['trunk']}, {status['total_jobs']} jobs")
    typer.echo("  jobs:     " + ", ".join(f"{k} {v}" for k, v in status["jobs"].items() if v) or "none")
    typer.echo("  outcomes: " + (", ".join(f"{k} {v}" for k, v in status["outcomes"].items()) or "none"))
    typer.echo(f"  attempts: {status['attempts']}, answered {status['answered']} ({rate}), "
               f"pace {status['pace_per_min']}/min, {status['remaining']} to go, ETA {eta}")
    if status.get("flagged_reason"):
        typer.echo(f"  flagged:  {status['flagged_reason']}")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


@campaign_app.command("list")
def campaign_list(json: JsonFlag = False) -> None:
    """All campaigns, oldest first."""
    with database() as conn:
        campaigns = list_campaigns(conn)
    if json:
        echo_json([c.to_json() for c in campaigns])
        return
    if not campaigns:
        typer.echo("no campaigns yet: dialer campaign create NAME --trunk TRUNK")
    for c in campaigns:
        window = c.windows or "all day"
        typer.echo(f"{c.id:>5}  {c.name:<24} {c.state:<9} trunk {c.trunk}, {window} {c.days} ({c.tz})")


# --------------------------------------------------------------------------------------------- upload

def upload(
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8 or GBK; comma, semicolon or tab) or XLSX file.")],
    phone_column: PhoneColumn = None,
    json: JsonFlag = False,
) -> None:
    """Add a file's numbers to a campaign; rejected rows go to FILE.rejects.csv."""
    from producer.upload import ingest_file

    with database() as conn, progress(f"uploading {file.name}") as bar:
        summary = ingest_file(conn, campaign, file, phone_column=phone_column, progress=bar,
                              data_dir=settings().data_dir)
    if json:
        echo_json(summary.to_json())
        return
    typer.echo(f"{summary.filename}: {summary.format}; phone column {summary.phone_column!r}")
    for label in ("accepted", "duplicates", "dnc", "rejected"):
        typer.echo(f"  {label:<11} {getattr(summary, label):>9}")
    typer.echo(f"  {summary.rows} rows in {summary.elapsed_s:.2f} s ({summary.rows_per_s:,.0f} rows/s)")
    if summary.error_report:
        typer.echo(f"rejected rows, with row numbers and reasons: {summary.error_report}")
    if summary.seen_before:
        first = summary.seen_before[0]
        typer.echo(f"note: this same file (sha256 {summary.sha256[:12]}) was uploaded to {campaign!r} before "
                   f"(upload {first['upload_id']}, {first['at']}); numbers already there were not added twice")


def enqueue(
    number: Annotated[str, typer.Argument(help="Phone number, e.g. 13900001111 or +8613900001111.")],
    campaign: Annotated[str, typer.Option(help="Campaign name.")],
    at: Annotated[str | None, typer.Option(help="When to call (ISO 8601; no offset = the campaign's time zone).")]
    = None,
    json: JsonFlag = False,
) -> None:
    """Add one number to a campaign, due now or at --at (once: a number already there is left alone)."""
    from producer.upload.single import enqueue_number

    with database() as conn:
        result = enqueue_number(conn, campaign, number, at=at)
    if json:
        echo_json(result.to_json())
        return
    if result.created:
        typer.echo(f"job {result.job_id}: {result.e164} due {result.due_at.isoformat()} ({result.status})")
    else:
        typer.echo(f"{result.e164} is already in {campaign!r}: job {result.job_id}, {result.status}, "
                   f"due {result.due_at.isoformat()}; nothing added")


# --------------------------------------------------------------------------------------------- DNC

@dnc_app.command("add")
def dnc_add(
    number: Annotated[str, typer.Argument(help="Phone number.")],
    reason: Annotated[str | None, typer.Option(help="Why, e.g. 'customer request'.")] = None,
) -> None:
    """Never call NUMBER; its jobs not yet dialled are skipped in every campaign."""
    from producer.dnc import add_dnc

    with database() as conn:
        added = add_dnc(conn, number, reason=reason, region=settings().default_region)
    state = "added to" if added.added else "already on"
    typer.echo(f"{added.e164} {state} the do-not-call list; {added.jobs_skipped} waiting jobs skipped")


@dnc_app.command("remove")
def dnc_remove(number: Annotated[str, typer.Argument(help="Phone number.")]) -> None:
    """Allow NUMBER again (jobs skipped earlier stay skipped: upload or enqueue it again)."""
    from producer.dnc import remove_dnc

    with database() as conn:
        e164, removed = remove_dnc(conn, number, region=settings().default_region)
    typer.echo(f"{e164} {'removed from' if removed else 'was not on'} the do-not-call list")


@dnc_app.command("check")
def dnc_check(number: Annotated[str, typer.Argument(help="Phone number.")]) -> None:
    """Say whether NUMBER is listed; exit status 0 when it is, 1 when it is not."""
    from producer.dnc import check_dnc

    with database() as conn:
        entry = check_dnc(conn, number, region=settings().default_region)
    if not entry.listed:
        typer.echo(f"{entry.e164} is not on the do-not-call list")
        raise typer.Exit(1)
    since = entry.added_at.isoformat(timespec="seconds") if entry.added_at else "?"
    typer.echo(f"{entry.e164} is on the do-not-call list since {since}" +
               (f" ({entry.reason})" if entry.reason else ""))


@dnc_app.command("import")
def dnc_import(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX file; a 'reason' column is kept.")],
    reason: Annotated[str | None, typer.Option(help="Reason for rows without one.")] = None,
    phone_column: PhoneColumn = None,
    json: JsonFlag = False,
) -> None:
    """List every number of a file; rejected rows go to FILE.rejects.csv."""
    from producer.dnc import import_dnc

    cfg = settings()
    with database() as conn, progress(f"importing {file.name}") as bar:
        summary = import_dnc(conn, file, reason=reason, phone_column=phone_column, region=cfg.default_region,
                             progress=bar, data_dir=cfg.data_dir)
    if json:
        echo_json(summary.to_json())
        return
    typer.echo(f"{summary.filename}: {summary.added} added, {summary.already_listed} already listed, "
               f"{summary.rejected} rejected; {summary.jobs_skipped} waiting jobs skipped")
    if summary.error_report:
        typer.echo(f"rejected rows, with row numbers and reasons: {summary.error_report}")
