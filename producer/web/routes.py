"""The signed-in pages: campaigns (list, create, one campaign's progress, outcomes and ladder), uploads.

Every route here depends on :func:`~producer.web.core.require_session`, which
also checks the CSRF token of every POST. Changes call the producer functions
the CLI and the API call (``create_campaign``, ``change_state``,
``ingest_bytes``, ``export_rows``); errors come back as the same
:class:`~shared.errors.DialerError` and are shown on the page.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from producer.api_export import export_rows
from producer.campaigns import change_state, create_campaign
from producer.upload.ingest import ingest_bytes
from producer.web import forms, queries
from producer.web.core import SESSION_COOKIE, Conn, connection, cookie_path, page, redirect, require_session, root
from shared.errors import ConfigError, DialerError

Db = Annotated[Conn, Depends(connection)]
Action = Literal["start", "pause", "resume", "cancel"]
router = APIRouter(dependencies=[Depends(require_session)])


@router.get("/ui/", response_class=HTMLResponse)
def campaigns_page(request: Request, conn: Db) -> HTMLResponse:
    return page(request, "campaigns.html", rows=queries.summaries(conn))


@router.get("/ui/rows", response_class=HTMLResponse)
def campaigns_rows(request: Request, conn: Db) -> HTMLResponse:
    """The list's rows alone, which the page fetches every few seconds."""
    return page(request, "_campaign_rows.html", rows=queries.summaries(conn))


@router.get("/ui/new", response_class=HTMLResponse)
def new_campaign_form(request: Request) -> HTMLResponse:
    return page(request, "new_campaign.html", fields=forms.FIELDS, values=forms.defaults(), errors={})


@router.post("/ui/new", response_class=HTMLResponse)
async def new_campaign(request: Request) -> Response:
    form = await request.form()
    files = {f.name: await upload.read() for f in forms.FIELDS
             if f.kind == "file" and isinstance(upload := form.get(f.name), UploadFile) and upload.filename}
    result = forms.read_form({k: v for k, v in form.items() if isinstance(v, str)}, files)
    if result.spec is None:
        return page(request, "new_campaign.html", 400, fields=forms.FIELDS, values=result.values,
                    errors=result.errors)
    spec = result.spec

    def create() -> int | str:
        with request.app.state.pool.connection() as conn:
            try:
                return create_campaign(conn, spec)
            except ConfigError as exc:
                return str(exc)

    created = await run_in_threadpool(create)
    if isinstance(created, str):  # e.g. the name is taken: checked by the database, shown beside the name
        return page(request, "new_campaign.html", 400, fields=forms.FIELDS, values=result.values,
                    errors={"name": created})
    return redirect(request, f"/ui/campaigns/{created}", msg="created")


@router.get("/ui/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, campaign_id: int, conn: Db, q: str = "", outcome: str = "", p: int = 1,
                  msg: str = "", state: str = "") -> HTMLResponse:
    return _campaign(request, conn, campaign_id, q=q, outcome=outcome, p=p, msg=msg, new_state=state)


def _campaign(request: Request, conn: Conn, campaign_id: int, *, q: str = "", outcome: str = "", p: int = 1,
              status_code: int = 200, **notices: str) -> HTMLResponse:
    """The campaign page; ``notices`` are fixed message keys (from the URL) or an error of this request."""
    campaign = queries.campaign_by_id(conn, campaign_id)
    return page(request, "campaign.html", status_code, c=campaign, s=queries.summary(conn, campaign),
                jobs=queries.jobs_page(conn, campaign_id, q, outcome, p), q=q, outcome=outcome, **notices)


@router.get("/ui/campaigns/{campaign_id}/live", response_class=HTMLResponse)
def campaign_live(request: Request, campaign_id: int, conn: Db) -> HTMLResponse:
    campaign = queries.campaign_by_id(conn, campaign_id)
    return page(request, "_status.html", c=campaign, s=queries.summary(conn, campaign))


@router.get("/ui/campaigns/{campaign_id}/jobs", response_class=HTMLResponse)
def campaign_jobs(request: Request, campaign_id: int, conn: Db, q: str = "", outcome: str = "",
                  p: int = 1) -> HTMLResponse:
    campaign = queries.campaign_by_id(conn, campaign_id)
    return page(request, "_jobs.html", c=campaign, jobs=queries.jobs_page(conn, campaign_id, q, outcome, p),
                q=q, outcome=outcome)


@router.post("/ui/campaigns/{campaign_id}/upload")
def campaign_upload(request: Request, campaign_id: int, conn: Db, file: Annotated[UploadFile, File()],
                    phone_column: Annotated[str, Form()] = "") -> Response:
    """The upload the API does, answered with the summary and the first rejected rows (the page's script)."""
    campaign = queries.campaign_by_id(conn, campaign_id)
    try:
        summary = ingest_bytes(conn, campaign.name, file.file, file.filename or "upload",
                               phone_column=phone_column.strip() or None, **request.app.state.upload_options)
    except DialerError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    rejects = queries.upload_rejects(conn, summary.upload_id)
    body = summary.to_json()
    body["rejects"] = [list(r) for r in rejects]
    body["rejects_csv"] = root(request) + f"/ui/uploads/{summary.upload_id}/rejects.csv"
    return JSONResponse(body, status_code=201)


# declared after /upload, which {action} would otherwise shadow
@router.post("/ui/campaigns/{campaign_id}/{action}", response_class=HTMLResponse)
def campaign_action(request: Request, campaign_id: int, action: Action, conn: Db,
                    confirm: Annotated[str, Form()] = "") -> Response:
    """Start, pause, resume, cancel; cancel only with ``confirm=yes`` (the page asks first)."""
    campaign = queries.campaign_by_id(conn, campaign_id)
    if action == "cancel" and confirm != "yes":
        return page(request, "confirm_cancel.html", c=campaign)
    try:
        state = change_state(conn, campaign.name, action)
    except ConfigError as exc:  # e.g. someone else paused it first: say so on the page, as the CLI would
        return _campaign(request, conn, campaign_id, status_code=409, error=str(exc))
    return redirect(request, f"/ui/campaigns/{campaign_id}", state=state)


@router.get("/ui/uploads/{upload_id}/rejects.csv")
def upload_rejects_csv(upload_id: int, conn: Db) -> Response:
    if queries.upload_campaign(conn, upload_id) is None:
        raise HTTPException(404, f"no upload with id {upload_id}")
    text = "".join(queries.rejects_csv(conn, upload_id))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="upload-{upload_id}-rejects.csv"'})


@router.get("/ui/campaigns/{campaign_id}/outcomes.csv")
def campaign_export(request: Request, campaign_id: int, conn: Db) -> StreamingResponse:
    """The API's export, byte for byte: the same function streams it."""
    campaign = queries.campaign_by_id(conn, campaign_id)
    pool = request.app.state.pool

    def stream() -> Any:
        with pool.connection() as own:
            yield from export_rows(own, campaign.id)

    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in campaign.name)
    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{safe}-outcomes.csv"'})


@router.get("/ui/jobs/{job_id}/ladder", response_class=HTMLResponse)
def job_ladder(request: Request, job_id: int, conn: Db) -> HTMLResponse:
    job, attempts, extra = queries.ladder(conn, job_id)
    if job is None:
        raise HTTPException(404, f"no job with id {job_id}")
    tz = queries.campaign_by_id(conn, job["campaign_id"]).tz
    return page(request, "_ladder.html", job=job, attempts=attempts, extra=extra, tz=tz)


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    response = redirect(request, "/ui/login")
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
    return response

