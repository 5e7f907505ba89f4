"""The error report: every rejected row in a CSV a person opens next to the file they uploaded.

Written as rejects arrive, so a file where every row is bad costs no memory.
It goes beside the input as ``<file>.rejects.csv`` (that is where the person
fixing the rows looks); where that folder is not writable, or the upload
came over HTTP and has no folder, under ``<data dir>/rejects/``. UTF-8 with a
BOM, so Excel and WPS show Chinese names and reasons correctly.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from producer.upload.validate import Reject
from shared.errors import ConfigError

REPORT_HEADER = ("row", "field", "value", "reason")
_UNSAFE = re.compile(r"[^\w.\-]+")


def report_path_beside(upload: Path) -> Path:
    return upload.with_name(upload.name + ".rejects.csv")


def report_path_in(data_dir: Path, upload_id: int, filename: str) -> Path:
    safe = _UNSAFE.sub("_", Path(filename).name)[:100] or "upload"
    return data_dir / "rejects" / f"{upload_id}-{safe}.rejects.csv"


class RejectReport:
    """Appends rejects to the report file, which is created on the first reject only."""

    def __init__(self, beside: Path | None, fallback: Path) -> None:
        self._candidates = [p for p in (beside, fallback) if p is not None]
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None
        self.path: Path | None = None
        self.count = 0

    def add(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        writer = self._writer or self._open()
        writer.writerows(
            {"row": r.row, "field": r.field, "value": r.raw, "reason": r.reason} for r in rejects
        )
        self.count += len(rejects)

    def _open(self) -> csv.DictWriter[str]:
        error: OSError | None = None
        for path in self._candidates:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("w", encoding="utf-8-sig", newline="")
            except OSError as exc:
                error = exc
                continue
            self.path = path
            self._writer = csv.DictWriter(self._file, fieldnames=REPORT_HEADER)
            self._writer.writeheader()
            return self._writer
        raise ConfigError(
            f"cannot write the error report to {' or '.join(map(str, self._candidates))} ({error}); "
            "set DIALER_DATA_DIR to a writable folder"
        )

    def close(self) -> str | None:
        """Finish the report; its path, or None when there was nothing to report."""
        if self._file is not None:
            self._file.close()
            self._file = None
        return str(self.path) if self.path is not None else None

    def discard(self) -> None:
        """Remove a half-written report of an upload that was rolled back."""
        self.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None
