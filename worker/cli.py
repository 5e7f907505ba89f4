"""Worker-side commands: ``dialer worker`` (the fleet on this host) and ``dialer call`` (one diagnostic call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shared.cli import settings
from shared.errors import ConfigError
from shared.logs import current_level, resolve_level


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_command)
    app.command("call")(call_command)
    app.command("engine")(engine_command)


def engine_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Say which pjsua2 engine this Python loads (PyPI wheel or built) and the limits compiled into it."""
    from worker.sip.engine import describe, probe

    try:
        info = probe()
    except RuntimeError as exc:
        raise ConfigError(
            f"{exc}; install one: pip install 'sip-dialer[wheel-engine]', or bash scripts/build-engine"
        ) from None
    typer.echo(json.dumps(info.as_dict()) if as_json else describe(info))


def worker_command(
    processes: Annotated[int | None, typer.Option(
        help="Worker processes (each one SIP endpoint); default: enough for the trunk, sized by the engine.")]
    = None,
    trunk: Annotated[str | None, typer.Option(help="Trunk whose queue to consume (default: the default trunk).")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve /metrics for the whole pool on this port.")]
    = None,
    shutdown_grace: Annotated[float, typer.Option(help="Seconds live calls may run on after SIGTERM.")] = 60.0,
    log_level: Annotated[str | None, typer.Option(
        help="Log level of the worker processes (default: dialer's --log-level / DIALER_LOG_LEVEL).")] = None,
) -> None:
    """Run dial workers on this host: processes sized by the SIP engine, each with one registered endpoint."""
    from worker.sip import capacity
    from worker.sip.engine import probe
    from worker.supervisor import Supervisor

    cfg = settings()
    for variable, value in (("DIALER_DATABASE_URL", cfg.database_url), ("DIALER_REDIS_URL", cfg.redis_url)):
        if not value:
            raise ConfigError(f"{variable}: required by `dialer worker` (try `dialer demo` for a sandbox)")
    chosen = cfg.trunk(trunk)
    level = resolve_level(log_level) if log_level else current_level()  # else dialer's --log-level / env
    engine = probe()  # the children import the same pjsua2 (same interpreter and environment)
    limits = capacity.process_limits(engine, cfg.calls_per_process, cfg.call_starts_per_s)
    count = capacity.plan_processes(engine, limits, max_concurrent=chosen.max_concurrent,
                                    requested=processes or cfg.worker_processes, cores=capacity.cores())
    capacity.ensure_descriptors(limits)
    typer.echo(f"starting {count} worker processes for trunk {chosen.name} (queue {chosen.queue}), "
               f"{limits.calls} calls and {limits.starts_per_s:g} starts/s each, on the {engine.kind} engine "
               f"(pjsip {engine.pjsip_version}, {engine.ioqueue})", err=True)
    supervisor = Supervisor(count, trunk=chosen.name, log_level=level,
                            metrics_port=metrics_port if metrics_port is not None else cfg.metrics_port,
                            shutdown_grace_s=shutdown_grace)
    raise typer.Exit(supervisor.run())


def call_command(
    number: Annotated[str, typer.Argument(help="The number to call, in any common written form.")],
    trunk: Annotated[str | None, typer.Option(help="Trunk to call through (default: the default trunk).")] = None,
    ring_timeout: Annotated[float, typer.Option(help="Seconds to let it ring before CANCEL.")] = 45.0,
    hold: Annotated[float, typer.Option(help="Seconds to hold an answered call before BYE.")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the ladder.")] = False,
    flow: Annotated[Path | None, typer.Option(help="Run this call flow (TOML/YAML/JSON) on answer.")] = None,
    var: Annotated[list[str] | None, typer.Option(help="name=value for the flow's {placeholders}; repeatable.")]
    = None,
) -> None:
    """Register the trunk, dial NUMBER through its variants and print the SIP ladder; exit 0 only if answered."""
    from shared.numbers import dial_variants, normalise
    from shared.outcomes import ANSWERED_OUTCOMES, MACHINE_OUTCOMES
    from worker import diagnostic_flow
    from worker.diagnostic import run_diagnostic_call
    from worker.runtime import network_of

    cfg = settings()
    chosen = cfg.trunk(trunk)
    parsed = normalise(number, cfg.default_region)
    variants = dial_variants(parsed, cfg.default_region, chosen.variant_order)
    ready = None
    if flow is not None:  # every prompt on disk before the INVITE: never a silent call
        ready = diagnostic_flow.prepare(flow, diagnostic_flow.parse_vars(var or []), cfg.data_dir)
    report = run_diagnostic_call(chosen, variants, ring_timeout_s=ring_timeout, hold_s=hold,
                                 echo=None if as_json else typer.echo, flow=ready,
                                 network=network_of(cfg))
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
    raise typer.Exit(0 if report["outcome"] in ANSWERED_OUTCOMES | MACHINE_OUTCOMES else 1)


