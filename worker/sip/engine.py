"""Which pjsua2 engine this Python loads, and the limits it was compiled with.

Why read them instead of a constant: two engines provide the module ``pjsua2``.
The PyPI wheel (``pjsua2-python``, the zero-setup default) carries pjproject's
defaults: 4 calls per Endpoint and a select() ioqueue of 64 handles, which a
start pace above ~60/s exhausts (the process aborts). The engine that
``scripts/build-engine`` compiles holds 512 calls on an epoll ioqueue of 4096
handles. A worker sized for one and running on the other either wastes the
engine or aborts, so every limit is read from the module actually loaded:

* ``max_calls``: ``UaConfig().maxCalls`` is ``pjsua_config_default()``'s value,
  which is the compiled ``PJSUA_MAX_CALLS`` (no Endpoint needed);
* ``ioqueue`` and ``pjsip_version``: ``pj_ioqueue_name()`` and
  ``pj_get_version()``, called through ctypes on the loaded extension (both
  return static strings and need no ``pj_init``);
* ``max_handles``: only ``pj_dump_config()`` tells the compiled
  ``PJ_IOQUEUE_MAX_HANDLES``, and it needs ``pj_init``; that would interfere
  with the process's one Endpoint, so :func:`probe` runs it in a child
  process (``python -m worker.sip.engine``) for ``dialer engine`` and
  ``dialer worker``, never inside an agent.

``kind`` is ``"wheel"`` when ``pjsua2`` is the PyPI wheel's package directory
and ``"built"`` when it is the single module SWIG's ``setup.py`` installs.
"""

from __future__ import annotations

import ctypes
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

EngineKind = Literal["wheel", "built"]

# Call starts per second one process sustains, measured (bench/bench_engine.py): with the 64-handle
# select() ioqueue 52/s holds and 100/s aborts the process; with epoll and 4096 handles 380/s held
# with nothing failing (800/s asked: CPU-bound), so the default leaves room for media and Python.
_SELECT_PACE = (40.0, 55.0)  # (default, ceiling)
_EPOLL_PACE = (150.0, 400.0)
DESCRIPTORS_PER_CALL = 3  # RTP + RTCP sockets, and a share of SIP transports, files and pipes
DESCRIPTORS_BASE = 256  # Python, Celery, Redis, Postgres and pjsua's own sockets


@dataclass(frozen=True)
class EngineInfo:
    """What ``dialer engine --json`` prints."""

    kind: EngineKind
    pjsip_version: str
    max_calls: int
    ioqueue: str
    max_handles: int | None  # None until :func:`probe` reads it in a child process
    path: str

    @property
    def default_starts_per_s(self) -> float:
        return (_SELECT_PACE if self.ioqueue == "select" else _EPOLL_PACE)[0]

    @property
    def max_starts_per_s(self) -> float:
        return (_SELECT_PACE if self.ioqueue == "select" else _EPOLL_PACE)[1]

    @property
    def usable_calls(self) -> int:
        """Calls one process can hold: the compiled maximum, or fewer if the ioqueue has no handles for more."""
        if self.max_handles is None:
            return self.max_calls
        return max(1, min(self.max_calls, (self.max_handles - 16) // DESCRIPTORS_PER_CALL))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _extension() -> Any:
    """The loaded ``_pjsua2`` extension module, whichever engine provides it."""
    import pjsua2

    for name in ("pjsua2._pjsua2", "_pjsua2"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            return module
    raise RuntimeError(f"pjsua2 from {pjsua2.__file__} loaded no _pjsua2 extension")


def _kind(module: Any) -> EngineKind:
    return "wheel" if hasattr(module, "__path__") else "built"


def _c_string(lib: ctypes.CDLL, name: str) -> str:
    func = getattr(lib, name)
    func.restype = ctypes.c_char_p
    func.argtypes = []
    value = func()
    return value.decode() if isinstance(value, bytes) else ""


@cache
def loaded() -> EngineInfo:
    """The engine this process imports, without ``max_handles``; safe beside a live Endpoint."""
    import pjsua2 as pj

    ext = _extension()
    lib = ctypes.CDLL(ext.__file__)  # the already loaded object: dlopen returns the same handle
    return EngineInfo(
        kind=_kind(pj),
        pjsip_version=_c_string(lib, "pj_get_version"),
        max_calls=int(pj.UaConfig().maxCalls),
        ioqueue=re.split(r"[^a-z]", _c_string(lib, "pj_ioqueue_name"), maxsplit=1)[0],  # "epoll[0x3]" -> epoll
        max_handles=None,
        path=str(Path(ext.__file__).resolve()),
    )


_MAX_HANDLES = re.compile(rb"PJ_IOQUEUE_MAX_HANDLES\s*:\s*(\d+)")


def _max_handles() -> int:
    """``PJ_IOQUEUE_MAX_HANDLES`` from ``pj_dump_config()``: only in a process with no Endpoint."""
    lib = ctypes.CDLL(_extension().__file__)
    lines: list[bytes] = []
    writer_type = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    writer = writer_type(lambda _level, data, length: lines.append(ctypes.string_at(data, length)))
    lib.pj_log_set_log_func(writer)  # before pj_init, which logs to stdout otherwise
    lib.pj_log_set_level(3)
    if lib.pj_init() != 0:
        raise RuntimeError("pj_init failed")
    try:
        lib.pj_dump_config()
    finally:
        lib.pj_log_set_log_func(None)
        lib.pj_shutdown()
    found = _MAX_HANDLES.search(b"".join(lines))
    if found is None:
        raise RuntimeError("pj_dump_config did not report PJ_IOQUEUE_MAX_HANDLES")
    return int(found.group(1))


def probe(python: str | None = None, env: dict[str, str] | None = None, timeout_s: float = 30.0) -> EngineInfo:
    """Everything about the engine ``python`` (default: this interpreter) loads, read in a child process."""
    done = subprocess.run(
        [python or sys.executable, "-m", "worker.sip.engine"],
        capture_output=True, text=True, timeout=timeout_s, env=env, check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"cannot load the pjsua2 engine: {detail}")
    return EngineInfo(**json.loads(done.stdout.strip().splitlines()[-1]))


def describe(info: EngineInfo) -> str:
    """One line for people: which engine, what it holds, and where it lives."""
    handles = "?" if info.max_handles is None else str(info.max_handles)
    return (
        f"{info.kind} engine: pjsip {info.pjsip_version}, {info.max_calls} calls per process, "
        f"{info.ioqueue} ioqueue with {handles} handles, starts paced at {info.default_starts_per_s:g}/s "
        f"(ceiling {info.max_starts_per_s:g}/s); {info.path}"
    )


def main() -> None:
    info = loaded()
    full = EngineInfo(**{**info.as_dict(), "max_handles": _max_handles()})
    print(json.dumps(full.as_dict()))


if __name__ == "__main__":
    main()
