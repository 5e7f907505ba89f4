"""``dialer sandbox-pbx``: run the sandbox PBX in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from sandbox.plan import load_plan
from sandbox.server import SandboxPbx
from shared.errors import ConfigError

_HELP = (
    "Run a carrier-like SIP server on UDP (digest REGISTER, 407 on INVITE, a number plan that "
    "answers, is busy, rings out or fails) so the dialer can be tried without a real PBX. "
    "It only ever replies to the address a request came from."
)


def register(app: typer.Typer) -> None:
    """Add the ``sandbox-pbx`` command to the root ``dialer`` app."""

    @app.command("sandbox-pbx", help=_HELP)
    def sandbox_pbx(
        port: Annotated[int, typer.Option(help="UDP port to listen on (0 = any free port).")] = 5070,
        plan: Annotated[
            Path | None,
            typer.Option(help="Number plan TOML file (default: the one shipped in sandbox/plan.toml)."),
        ] = None,
        host: Annotated[
            str,
            typer.Option(help="Address to bind; 0.0.0.0 only inside a container network."),
        ] = "127.0.0.1",
        recordings: Annotated[
            Path | None,
            typer.Option(help="Write what each answered callee hears to a WAV per call in this folder."),
        ] = None,
    ) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            number_plan = load_plan(plan)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        pbx = SandboxPbx(number_plan, host=host, port=port, recordings_dir=recordings)
        try:
            pbx.start()
        except OSError as exc:
            typer.echo(f"error: cannot listen on udp {host}:{port}: {exc.strerror}", err=True)
            raise typer.Exit(1) from None
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: done.set())
        users = ", ".join(u.username for u in number_plan.users)
        typer.echo(f"sandbox PBX listening on udp {host}:{pbx.port} (realm {number_plan.realm!r}); "
                   f"users: {users}; passwords are in the plan file. Ctrl-C to stop.")
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
        finally:
            pbx.stop()
