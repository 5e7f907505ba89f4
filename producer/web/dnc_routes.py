"""The do-not-call page: search the list, add or remove a number, import a file of numbers.

Adding, removing and importing are :mod:`producer.dnc`'s functions, so the
page normalises numbers, skips waiting jobs and reports bad rows exactly as
``dialer dnc ...`` does. The import reads a path (its reject report goes
beside the file), so the upload is written to a private temporary folder,
imported, and the report's rows are shown before the folder goes.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from producer.dnc import add_dnc, import_dnc, remove_dnc
from producer.web import queries
from producer.web.core import Conn, config, connection, page, redirect, require_session
from shared.errors import DialerError

Db = Annotated[Conn, Depends(connection)]
router = APIRouter(dependencies=[Depends(require_session)])
MAX_SHOWN_REJECTS = 200
E164 = re.compile(r"\+[1-9][0-9]{5,14}")


def _dnc_page(request: Request, conn: Conn, q: str = "", status_code: int = 200, **context: object) -> HTMLResponse:
    rows, total = queries.dnc_search(conn, q)
    return page(request, "dnc.html", status_code, rows=rows, total=total, q=q, **context)


@router.get("/ui/dnc", response_class=HTMLResponse)
def dnc_page(request: Request, conn: Db, q: str = "", msg: str = "", e164: str = "", n: int = 0) -> HTMLResponse:
    """The list; ``msg`` names a fixed sentence about ``e164`` (shown only when it is an E.164 number)."""
    shown = msg if E164.fullmatch(e164) else ""
    return _dnc_page(request, conn, q, msg=shown, e164=e164, n=n)


@router.post("/ui/dnc/add")
def dnc_add(request: Request, conn: Db, number: Annotated[str, Form()] = "",
            reason: Annotated[str, Form()] = "") -> Response:
    try:
        added = add_dnc(conn, number, reason=reason.strip() or None, region=config(request).region)
    except DialerError as exc:
        return _dnc_page(request, conn, status_code=400, error=str(exc))
    key = "dnc_added" if added.added else "dnc_already"
    return redirect(request, "/ui/dnc", msg=key, e164=added.e164, n=added.jobs_skipped)


@router.post("/ui/dnc/remove")
def dnc_remove(request: Request, conn: Db, number: Annotated[str, Form()] = "") -> Response:
    try:
        e164, removed = remove_dnc(conn, number, region=config(request).region)
    except DialerError as exc:
        return _dnc_page(request, conn, status_code=400, error=str(exc))
    return redirect(request, "/ui/dnc", msg="dnc_removed" if removed else "dnc_not_listed", e164=e164)


@router.post("/ui/dnc/upload", response_class=HTMLResponse)
def dnc_upload(request: Request, conn: Db, file: Annotated[UploadFile, File()],
               reason: Annotated[str, Form()] = "") -> HTMLResponse:
    folder = Path(tempfile.mkdtemp(prefix="dialer-dnc-"))
    try:
        path = folder / (Path(file.filename or "numbers.csv").name or "numbers.csv")
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        try:
            summary = import_dnc(conn, path, reason=reason.strip() or None, region=config(request).region,
                                 data_dir=folder)
        except DialerError as exc:
            return _dnc_page(request, conn, status_code=400, error=str(exc))
        rejects: list[list[str]] = []
        if summary.error_report and Path(summary.error_report).exists():
            with open(summary.error_report, encoding="utf-8", newline="") as report:
                rejects = list(csv.reader(report))[1:MAX_SHOWN_REJECTS + 1]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _dnc_page(request, conn, imported=summary, rejects=rejects)
