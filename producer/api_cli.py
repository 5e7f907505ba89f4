"""``dialer api``: serve the HTTP API with uvicorn (loopback by default), /metrics included."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli import settings
from shared.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("api")(api)


def api(
    host: Annotated[str, typer.Option(help="Address to listen on; keep loopback unless behind a proxy.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    root_path: Annotated[str, typer.Option(help="Path prefix a reverse proxy serves this under, e.g. /dialer "
                                           "(or send X-Forwarded-Prefix).")] = "",
    session_hours: Annotated[float, typer.Option(help="Web sign-in lifetime, hours.", min=0.01)] = 8.0,
) -> None:
    """Serve the HTTP API (bearer token) and the web pages at /ui/ (sign in with the same token)."""
    import uvicorn

    from producer.api import create_app
    from shared.db.migrate import migrate
    from shared.embedded import services

    cfg = settings()
    if cfg.api_token is None:
        raise ConfigError("DIALER_API_TOKEN: required to serve the API (every request must carry it)")
    with services(cfg.database_url, cfg.redis_url or "unused://", cfg.data_dir) as urls:
        if cfg.database_url is None:
            migrate(urls.database_url)  # the embedded database is ours to keep up to date
        app = create_app(urls.database_url, cfg.api_token.get_secret_value(), data_dir=cfg.data_dir,
                         region=cfg.default_region, session_ttl_s=session_hours * 3600)
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        print(f"dialer api: web pages at http://{shown}:{port}{root_path.rstrip('/')}/ui/", flush=True)
        uvicorn.run(app, host=host, port=port, log_level=cfg.log_level.lower(), access_log=False,
                    root_path=root_path.rstrip("/"))
