"""The HTTP API: campaigns, uploads, state changes, status and the outcomes export, behind a bearer token.

Thin, like the CLI: every endpoint calls :mod:`producer.campaigns` or
:mod:`producer.upload`, so a rule lives in one place whichever door a request
came through. Errors map by branch of the error tree, not by message:
unknown campaign 404, illegal state change 409, bad option or unreadable
upload 400, database down 503.

The token is compared in constant time (``hmac.compare_digest``) and never
logged: a refused request is logged with its method, path and client only.
``/healthz`` and ``/metrics`` need no token (Prometheus scrapes without one;
no metric carries a number or a secret).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import make_asgi_app
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from producer.api_export import export_rows
from producer.campaigns import (
    CampaignNotFound,
    CampaignSpec,
    IllegalTransition,
    campaign_status,
    change_state,
    create_campaign,
    get_campaign,
    list_campaigns,
    parse_when,
)
from producer.upload.ingest import ingest_bytes
from producer.web import install as install_web
from shared.errors import BadUpload, ConfigError, DatabaseUnavailable, DialerError
from shared.logs import register_secret
from shared.retry_policy import parse_retry_delays

log = logging.getLogger(__name__)

Conn = psycopg.Connection[TupleRow]
Action = Literal["start", "pause", "resume", "cancel"]
_bearer = HTTPBearer(auto_error=False)


class CampaignIn(BaseModel):
    """A campaign to create; the same options as ``dialer campaign create``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    trunk: str
    region: str = "CN"
    tz: str = "Asia/Shanghai"
    windows: str = ""
    days: str = "mon-sun"
    start_at: str | None = Field(default=None, description="ISO 8601; no offset = tz")
    end_at: str | None = None
    recur_cron: str | None = None
    max_attempts: int = 3
    retry_delays: str | dict[str, float] = Field(default="", description="busy=10m,... or {outcome: seconds}")
    max_concurrent: int = 10
    cps: float = 5.0
    ring_timeout_s: float = 45.0
    hold_s: float = 0.0
    allowed_regions: list[str] = Field(default_factory=list)
    allowed_types: list[str] | None = None

    def to_spec(self) -> CampaignSpec:
        """The spec :func:`create_campaign` checks; ValueError names a bad time or delay."""
        delays = self.retry_delays
        text = delays if isinstance(delays, str) else ",".join(f"{k}={v}s" for k, v in delays.items())
        extra: dict[str, Any] = {}
        if self.allowed_types is not None:
            extra["allowed_types"] = tuple(self.allowed_types)
        return CampaignSpec(
            name=self.name, trunk=self.trunk, region=self.region, tz=self.tz, windows=self.windows,
            days=self.days, recur_cron=self.recur_cron, max_attempts=self.max_attempts,
            start_at=parse_when(self.start_at, self.tz) if self.start_at else None,
            end_at=parse_when(self.end_at, self.tz) if self.end_at else None,
            retry_delays=parse_retry_delays(text), max_concurrent=self.max_concurrent, cps=self.cps,
            ring_timeout_s=self.ring_timeout_s, hold_s=self.hold_s,
            allowed_regions=tuple(self.allowed_regions), **extra,
        )


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """401 unless the bearer token matches, compared in constant time; the token is never logged."""
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, request.app.state.api_token):
        client = request.client.host if request.client else "?"
        log.warning("refused %s %s from %s: %s bearer token", request.method, request.url.path, client,
                    "no" if credentials is None else "wrong")
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


def connection(request: Request) -> Iterator[Conn]:
    with request.app.state.pool.connection() as conn:
        yield conn


Db = Annotated[Conn, Depends(connection)]
router = APIRouter(dependencies=[Depends(require_token)])


@router.get("/campaigns")
def campaigns_list(conn: Db) -> list[dict[str, Any]]:
    return [campaign.to_json() for campaign in list_campaigns(conn)]


@router.post("/campaigns", status_code=201)
def campaigns_create(body: CampaignIn, conn: Db) -> dict[str, Any]:
    try:
        spec = body.to_spec()
    except ValueError as exc:
        raise ConfigError(f"campaign {body.name!r}: {exc}") from None
    create_campaign(conn, spec)
    return get_campaign(conn, spec.name).to_json()


@router.get("/campaigns/{name}")
def campaigns_get(name: str, conn: Db) -> dict[str, Any]:
    return get_campaign(conn, name).to_json()


@router.get("/campaigns/{name}/status")
def campaigns_status(name: str, conn: Db) -> dict[str, Any]:
    return campaign_status(conn, name)


@router.post("/campaigns/{name}/uploads", status_code=201)
def campaigns_upload(
    request: Request, name: str, conn: Db, file: Annotated[UploadFile, File()],
    phone_column: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """Upload a CSV/XLSX list as multipart field ``file``; returns the upload summary."""
    summary = ingest_bytes(conn, name, file.file, file.filename or "upload", phone_column=phone_column,
                           **request.app.state.upload_options)
    return summary.to_json()


@router.post("/campaigns/{name}/{action}")  # declared after /uploads, which {action} would otherwise shadow
def campaigns_action(name: str, action: Action, conn: Db) -> dict[str, str]:
    return {"campaign": name, "state": change_state(conn, name, action)}


@router.get("/campaigns/{name}/outcomes.csv")
def campaigns_export(request: Request, name: str, conn: Db) -> StreamingResponse:
    """One CSV row per job, streamed."""
    campaign_id = get_campaign(conn, name).id  # a 404 before the stream starts
    return StreamingResponse(
        _stream_export(request.app.state.pool, campaign_id), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_safe_filename(name)}-outcomes.csv"'},
    )


def create_app(database_url: str, api_token: str, *, data_dir: Path | None = None, pool_size: int = 4,
               region: str = "CN", session_ttl_s: float = 8 * 3600.0) -> FastAPI:
    """The API app; its connection pool opens with the app (after fork) and closes with it.

    ``data_dir`` is where upload reject reports are written (default: the upload module's). The web pages
    (producer.web) ride along on the same token; ``region`` is their default for DNC numbers.
    """
    if len(api_token) < 16:
        raise ConfigError("DIALER_API_TOKEN: set a token of at least 16 characters to serve the API")
    register_secret(api_token)
    pool: ConnectionPool[Conn] = ConnectionPool(
        database_url, min_size=1, max_size=pool_size, open=False, name="api",
        kwargs={"autocommit": True, "application_name": "sip-dialer-api"},
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True, timeout=15)
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="sip-dialer", lifespan=lifespan, docs_url=None, redoc_url=None)  # /docs: producer.web
    app.state.pool = pool
    app.state.api_token = api_token.encode()
    app.state.upload_options = {"data_dir": data_dir} if data_dir is not None else {}
    app.mount("/metrics", make_asgi_app())
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.include_router(router)
    install_web(app, api_token, region=region, session_ttl_s=session_ttl_s)
    _install_error_handlers(app)
    return app


def healthz() -> dict[str, str]:
    """Liveness without a token: the process answers."""
    return {"status": "ok"}


def _stream_export(pool: ConnectionPool[Conn], campaign_id: int) -> Iterator[str]:
    """Hold a pool connection for as long as the stream runs (a request dependency would return it early)."""
    with pool.connection() as conn:
        yield from export_rows(conn, campaign_id)


def _safe_filename(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name) or "campaign"


_STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (CampaignNotFound, 404),
    (IllegalTransition, 409),
    (BadUpload, 400),
    (ConfigError, 400),
    (DatabaseUnavailable, 503),
    (psycopg.OperationalError, 503),
    (DialerError, 400),
)


def _install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind))
        detail = "the database is unavailable; try again" if status == 503 else str(exc)
        if status == 503:
            log.error("request failed: database unavailable (%s)", type(exc).__name__)
        return JSONResponse({"detail": detail}, status_code=status)

    for kind, _code in _STATUS_BY_ERROR:
        app.add_exception_handler(kind, handle)

