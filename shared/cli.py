"""The ``dialer`` command: one Typer app that each package adds its commands to.

``shared`` must not import ``producer`` or ``worker``; instead each of them has a
``cli`` module with ``register(app)``, named in :data:`COMMAND_MODULES` and
loaded when the command runs. A user-facing failure (a :class:`DialerError`)
prints one line naming what was wrong and exits 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from shared.errors import DialerError
from shared.logs import setup_logging
from shared.settings import Settings, load_settings

COMMAND_MODULES = (
    "producer.cli",
    "producer.dispatch_cli",
    "producer.api_cli",
    "worker.cli",
    "sandbox.cli",
    "sandbox.agent_cli",
    "producer.demo_cli",
)

app = typer.Typer(
    name="dialer",
    help="sip-dialer: outbound SIP campaigns on Postgres, Redis, Celery and pjsua2.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class _State:
    config_file: Path | None = None
    settings: Settings | None = None


def settings() -> Settings:
    """The process's settings, built on first use from --config and DIALER_*."""
    if _State.settings is None:
        _State.settings = load_settings(_State.config_file)
    return _State.settings


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="DIALER_CONFIG", help="TOML settings file (DIALER_* variables win)."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(
        help="DEBUG, INFO, WARNING or ERROR, for every process this command starts (default: "
             "DIALER_LOG_LEVEL, else WARNING). DIALER_LOG_FORMAT=json logs one JSON object a line.")] = None,
) -> None:
    _State.config_file = config
    _State.settings = None
    setup_logging(log_level)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the schema (idempotent; safe when several processes run it at once)."""
    from shared.db.migrate import migrate
    from shared.embedded import services

    cfg = settings()
    if cfg.database_url is None:
        typer.echo("DIALER_DATABASE_URL is not set: migrating the embedded Postgres under "
                   f"{cfg.data_dir}", err=True)
    with services(cfg.database_url, cfg.redis_url or "unused://", cfg.data_dir) as urls:
        applied = migrate(urls.database_url)
    typer.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)


def _is_click_error(exc: BaseException) -> bool:
    """Whether ``exc`` is click's ClickException (UsageError, BadParameter...), whichever click raised it.

    Matched by class name, not by ``isinstance(exc, click.ClickException)``:
    typer 0.29 vendors its own copy of click (``typer._click``), whose
    exceptions are not the installed click's, and that isinstance check
    silently stopped matching, turning every usage error into a traceback.
    """
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__) and callable(
        getattr(exc, "show", None)
    )


def main() -> None:
    _register_commands()
    try:
        # Outside standalone mode click returns a command's exit status instead of exiting.
        status = app(standalone_mode=False, prog_name="dialer")
    except DialerError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here with standalone_mode off
        if not _is_click_error(exc):
            raise
        show: Callable[[], None] = getattr(exc, "show")  # noqa: B009  # found by name, see above
        show()  # the usage line, a hint and what was wrong
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
