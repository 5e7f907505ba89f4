"""``dialer demo``: the sandbox run a newcomer starts with (see producer/demo.py)."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from producer.demo import DemoResult, run_demo
from producer.demo_flow import flow_story
from shared.cli import settings


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the metrics endpoint up until Ctrl-C.")] = False,
    keep_open: Annotated[bool, typer.Option(
        "--keep-open", help="Leave the web page (and the rest) up until Ctrl-C, to look around.")] = False,
    web_port: Annotated[int | None, typer.Option(help="Port for the web page (default: a free one).")] = None,
    processes: Annotated[int, typer.Option(help="Worker processes to run.")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the campaign to finish.")] = 60.0,
    metrics_port: Annotated[int | None, typer.Option(help="Port for /metrics (default: a free one).")] = None,
) -> None:
    """Dial a sample campaign against a sandbox PBX, all on this machine; print the outcome table."""
    tty = sys.stderr.isatty()
    last = [""]

    def progress(counts: dict[str, int]) -> None:
        line = "  jobs: " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
        if line != last[0]:
            last[0] = line
            typer.echo(("\r" + line.ljust(100)) if tty else line, err=True, nl=not tty)

    def wait_for_ctrl_c() -> None:
        typer.echo("the web page and metrics stay up: press Ctrl-C to stop", err=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass

    result = run_demo(settings(), processes=processes, timeout_s=timeout, metrics_port=metrics_port,
                      say=lambda line: typer.echo(line, err=True), progress=progress,
                      keep=wait_for_ctrl_c if keep or keep_open else None, web_port=web_port)
    if tty:
        typer.echo("", err=True)
    print_result(result)
    raise typer.Exit(0 if result.finished else 1)


def print_result(result: DemoResult) -> None:
    typer.echo(f"\nOutcomes of campaign {result.campaign}")
    header = f"{'number':<16} {'name':<8} {'outcome':<15} {'att':>3}  {'talk s':>6}  variants tried (code)"
    typer.echo(header)
    typer.echo("-" * len(header))
    for job in result.jobs:
        typer.echo(f"{job['e164']:<16} {job['name'] or '':<8} {job['outcome'] or job['status']:<15} "
                   f"{job['attempts']:>3}  {float(job['talk_s']):>6.1f}  {job['tries'] or '-'}")
    stories = [(job["e164"], flow_story(job["flow"])) for job in result.jobs if job.get("flow")]
    if stories:
        typer.echo("\nWhat answered callees heard and did (from each call's flow log)")
        for e164, story in stories:
            typer.echo(f"  {e164:<16} {story}")
    status: dict[str, Any] = result.status
    typer.echo(f"\nanswer rate {float(status.get('answer_rate') or 0):.0%}, attempts {status.get('attempts')}, "
               f"jobs by state {status.get('jobs')}, finished in {result.elapsed_s:.0f}s")
    upload = result.upload
    typer.echo(f"upload: {upload.rows} rows, {upload.accepted} accepted, {upload.duplicates} duplicate, "
               f"{upload.dnc} DNC, {upload.rejected} rejected")
    for row, field, raw, reason in result.rejects:
        typer.echo(f"  rejected row {row} ({field} {raw!r}): {reason}")
    if not result.finished:
        typer.echo("the campaign did not finish in time", err=True)
