"""What an answered call's flow did, for the attempt ladder; and its recording, served when this host has it.

A worker writes the flow's log and facts into its CDR row (``call_attempts``:
``flow_steps``, ``digits``, ``transfer_target``/``transfer_status``,
``first_audio_s``, the ``amd_*`` columns and ``recording``, see
worker/flow_job.py). The ladder shows them as an operator reads them: one
line per step with its action, result and time, not a JSON dump.

The recording is a file the worker wrote under *its* ``DIALER_DATA_DIR``
(``recordings/<uuid>-<step>.wav``, worker/flow_runner.py). When the API runs
on the worker's host (or shares the folder), the file is under the API's own
``DIALER_DATA_DIR/recordings`` and the page links to a signed-in route that
serves it; otherwise the page shows the reference and says it is on the
worker host. The route is addressed by the attempt's id, never by a path
from the request, and the file is served only when its resolved path stays
inside the recordings folder, so neither the URL nor a stored reference can
reach any other file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse

from producer.web.core import SECURITY_HEADERS, Conn, connection, require_session

# Columns the ladder renders itself; any other column a later migration adds is shown generically.
FLOW_COLUMNS = frozenset({
    "flow_steps", "digits", "transfer_target", "transfer_status", "recording", "first_audio_s",
    "amd_decision", "amd_reason", "amd_decided_at_s",
})
# A flow log entry's keys (shared/flow/state.py Entry.to_json), in the order the ladder shows them.
STEP_KEYS = ("step", "action", "result", "at_s", "digits", "status", "played_s", "target", "decision",
             "reason", "decided_at_s", "heard", "path")
RECORDINGS = "recordings"

router = APIRouter(dependencies=[Depends(require_session)])


@dataclass(frozen=True)
class Recording:
    """A CDR's recording as the page shows it: a link to this server, a link elsewhere, or text."""

    reference: str
    url: str | None  # None: the file is on the worker host, shown as text


def recordings_dir(data_dir: Path | None) -> Path | None:
    return None if data_dir is None else Path(data_dir) / RECORDINGS


def local_recording(folder: Path | None, reference: str | None) -> Path | None:
    """The file a CDR's ``recording`` names, when it is a regular file inside ``folder``; else None.

    The worker stores the path it wrote; the API's folder may be named
    differently (relative vs absolute, a mount), so the reference's own
    path and the file of the same name in ``folder`` are both tried, each
    resolved (symlinks, ``..``) and kept only when still inside ``folder``.
    """
    if folder is None or not reference or reference.startswith(("http://", "https://")):
        return None
    try:
        base = folder.resolve()
        given = Path(reference)
        for candidate in (given, base / given.name):
            path = candidate.resolve()
            if path.is_relative_to(base) and path.is_file():
                return path
    except (OSError, ValueError):  # a reference holding a NUL byte, a loop of symlinks
        return None
    return None


def recording_view(attempt: Mapping[str, Any], folder: Path | None, link: str) -> Recording | None:
    """How the ladder shows the attempt's recording; ``link`` is this server's route for it."""
    reference = attempt.get("recording")
    if not reference:
        return None
    if str(reference).startswith(("http://", "https://")):
        return Recording(str(reference), str(reference))
    return Recording(str(reference), link if local_recording(folder, str(reference)) else None)


def steps(attempt: Mapping[str, Any]) -> list[list[tuple[str, Any]]]:
    """The flow log as (key, value) pairs per step, known keys first in :data:`STEP_KEYS` order."""
    rows = attempt.get("flow_steps") or []
    out: list[list[tuple[str, Any]]] = []
    for entry in rows if isinstance(rows, list) else []:
        if not isinstance(entry, Mapping):
            out.append([("result", entry)])
            continue
        known = [(k, entry[k]) for k in STEP_KEYS if entry.get(k) is not None]
        out.append(known + [(k, v) for k, v in entry.items() if k not in STEP_KEYS and v is not None])
    return out


def has_flow(attempt: Mapping[str, Any]) -> bool:
    return any(attempt.get(name) not in (None, "", []) for name in FLOW_COLUMNS)


def data_dir(request: Request) -> Path | None:
    """The API's own DIALER_DATA_DIR (``dialer api`` passes it to create_app)."""
    value = request.app.state.upload_options.get("data_dir")
    return Path(value) if value is not None else None


@router.get("/ui/attempts/{attempt_id}/recording")
def attempt_recording(request: Request, attempt_id: int, conn: Annotated[Conn, Depends(connection)]) -> FileResponse:
    """The attempt's recording, when this host holds it under DIALER_DATA_DIR/recordings."""
    row = conn.execute("SELECT recording FROM call_attempts WHERE id = %s", (attempt_id,)).fetchone()
    if row is None or not row[0]:
        raise HTTPException(404, f"attempt {attempt_id} has no recording")
    path = local_recording(recordings_dir(data_dir(request)), str(row[0]))
    if path is None:
        raise HTTPException(404, f"the recording of attempt {attempt_id} is not on this host; it is on the"
                                 f" worker host as {row[0]}")
    return FileResponse(path, media_type="audio/wav", filename=f"attempt-{attempt_id}-{path.name}",
                        headers=SECURITY_HEADERS)
