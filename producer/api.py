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
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import make_asgi_app
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from pydantic import Base64Bytes, Field

from producer.api_export import export_rows
from producer.campaigns import (
    CampaignNotFound,
    CampaignSpec,
    FlowSpec,
    IllegalTransition,
    campaign_status,
    change_state,
    create_campaign,
    get_campaign,
    list_campaigns,
)
from producer.upload.ingest import ingest_bytes
from producer.web import install as install_web
from shared.errors import BadUpload, ConfigError, DatabaseUnavailable, DialerError
from shared.logs import register_secret

log = logging.getLogger(__name__)

Conn = psycopg.Connection[TupleRow]
Action = Literal["start", "pause", "resume", "cancel"]
_bearer = HTTPBearer(auto_error=False)


class CampaignIn(CampaignSpec):
    """A campaign to create: the campaign spec's options, with the flow as a JSON document.

    ``flow`` is the same document a flow file holds; ``prompts`` carries the
    WAVs its play steps name, base64-encoded, by the name the step uses.
    """

    flow: dict[str, Any] | None = None  # type: ignore[assignment]  # the document; the spec holds a FlowSpec
    prompts: dict[str, Base64Bytes] = Field(default_factory=dict)

    def to_spec(self) -> CampaignSpec:
        """The spec :func:`create_campaign` checks."""
        flow = FlowSpec(document=self.flow, prompts=dict(self.prompts)) if self.flow is not None else None
        return CampaignSpec(**self.model_dump(exclude={"flow", "prompts"}), flow=flow)


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
    spec = body.to_spec()
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

    async def unreadable(_request: Request, exc: Exception) -> JSONResponse:
        """A value our own parsers refused (a time, a delay) is a bad option: 400 with the reason, like the CLI.

        Anything else (an unknown field, a wrong type) stays FastAPI's 422.
        """
        assert isinstance(exc, RequestValidationError)
        ours = [e for e in exc.errors() if e.get("type") == "value_error"]
        if ours and len(ours) == len(exc.errors()):
            first = ours[0]
            field = ".".join(str(p) for p in first["loc"][1:]) or "body"
            reason = str(first.get("ctx", {}).get("error", first["msg"]))
            return JSONResponse({"detail": f"{field}: {reason}"}, status_code=400)
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    app.add_exception_handler(RequestValidationError, unreadable)

