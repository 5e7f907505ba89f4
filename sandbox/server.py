"""SandboxPbx: the UDP socket and the one thread that runs the PBX core.

A single thread owns the SIP socket, one RTP socket per answered call (what
the callee hears, :mod:`sandbox.rtp`; written to a WAV per call when
``recordings_dir`` is given), a fallback RTP sink and the timers, and calls
``PbxCore`` for every datagram, so call state needs no locks. ``stop()`` wakes
the thread through a socketpair rather than by polling, and joins it.

Every reply goes to the address the request came from, never to an address
taken from a header: the sandbox cannot be used to send SIP anywhere else.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from sandbox.calls import CallLog, CallRecord
from sandbox.messages import Address, Request
from sandbox.plan import Plan
from sandbox.rtp import RtpSession, open_session
from sandbox.sdp import remote_audio
from sandbox.timers import Timers
from sandbox.uas import PbxCore

log = logging.getLogger("sandbox.pbx")

_WILDCARDS = ("0.0.0.0", "::", "")
_MAX_DATAGRAM = 65535
_IDLE_POLL_S = 5.0  # only bounds the select() when no timer is pending; stop() wakes it at once


class SandboxPbx:
    """A carrier-like SIP server on UDP for trying the dialer without a real PBX.

    >>> pbx = SandboxPbx(load_plan()); pbx.start(); pbx.port  # doctest: +SKIP
    """

    def __init__(self, plan: Plan, host: str = "127.0.0.1", port: int = 0,
                 recordings_dir: Path | None = None) -> None:
        self._plan = plan
        self._recordings = recordings_dir
        self._sel: selectors.BaseSelector | None = None
        self._sessions: set[RtpSession] = set()
        self._host = host
        self._requested_port = port
        self._calls = CallLog()
        self._timers = Timers()
        self._sock: socket.socket | None = None
        self._media: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._core: PbxCore | None = None
        self._stopping = threading.Event()
        self._local_hosts: dict[str, str] = {}
        self._port: int | None = None

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._port is not None else "not started"
        return f"SandboxPbx({where}, users={[u.username for u in self._plan.users]})"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the sockets and start the server thread; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("SandboxPbx already started")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._media = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((self._host, self._requested_port))
            self._media.bind((self._host, 0))
        except OSError:
            self._close()
            raise
        for s in (self._sock, self._media):
            s.setblocking(False)
        self._port = int(self._sock.getsockname()[1])
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        if self._recordings is not None:
            self._recordings.mkdir(parents=True, exist_ok=True)
        self._core = PbxCore(self._plan, self._send, self._timers, self._local_host, self.port,
                             self._media.getsockname()[1], self._calls,
                             open_media=self._open_media, close_media=self._close_media)
        self._thread = threading.Thread(target=self._run, name="sandbox-pbx", daemon=True)
        self._thread.start()
        log.info("sandbox PBX listening on udp %s:%d", self._host, self.port)

    def stop(self) -> None:
        """Stop the thread and close the sockets (idempotent). Live calls are dropped silently."""
        if self._thread is None:
            return
        self._stopping.set()
        if self._wake_w is not None:
            self._wake_w.send(b"x")
        self._thread.join()
        self._thread = None
        self._close()
        log.info("sandbox PBX stopped")

    def __enter__(self) -> SandboxPbx:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- what callers may look at ---------------------------------------------------------------

    @property
    def port(self) -> int:
        """The UDP port the PBX listens (or listened) on: the OS-chosen one when constructed with 0."""
        if self._port is None:
            raise RuntimeError("SandboxPbx not started")
        return self._port

    @property
    def call_log(self) -> list[CallRecord]:
        """A snapshot of every INVITE transaction so far, oldest first."""
        return self._calls.snapshot()

    def wait_for_calls(self, predicate: Callable[[list[CallRecord]], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(call_log)`` holds (True) or ``timeout`` seconds pass (False)."""
        return self._calls.wait_for(predicate, timeout)

    def registrations(self) -> dict[str, list[str]]:
        """Live registered contacts per username."""
        return self._core.registrar.bindings() if self._core else {}

    # --- the server thread -----------------------------------------------------------------------

    def _run(self) -> None:
        assert self._sock and self._media and self._wake_r and self._core
        with selectors.DefaultSelector() as sel:
            self._sel = sel
            for s in (self._sock, self._media, self._wake_r):
                sel.register(s, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in sel.select(self._timers.next_delay(_IDLE_POLL_S)):
                    if key.fileobj is self._sock:
                        self._drain_sip(self._sock, self._core)
                    elif isinstance(key.data, RtpSession):
                        key.data.receive()
                    else:
                        _discard(key.fileobj)  # type: ignore[arg-type]
                try:
                    self._timers.run_due()
                except Exception as exc:  # a bug in one callback must not stop the PBX
                    log.error("timer failed: %s", _describe(exc))
        self._timers.clear()
        self._sel = None
        for session in list(self._sessions):  # calls still up when the PBX stops
            self._close_media(session)

    def _open_media(self, invite: Request, local_host: str) -> RtpSession:
        """A new RTP socket for an answered call, watched by the server's selector."""
        session = open_session(local_host, remote_audio(invite.sdp), self._recordings, invite.number,
                               invite.call_id)
        if self._sel is not None:
            self._sel.register(session.sock, selectors.EVENT_READ, session)
        self._sessions.add(session)
        return session

    def _close_media(self, session: RtpSession) -> str | None:
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(session.sock)
        self._sessions.discard(session)
        path = session.close()
        return None if path is None else str(path)

    def _drain_sip(self, sock: socket.socket, core: PbxCore) -> None:
        for _ in range(64):  # bounded, so timers still run under a flood
            try:
                data, source = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable from a peer that already exited
                continue
            try:
                core.handle(data, (source[0], source[1]))
            except Exception as exc:  # never let one request kill the server
                log.error("failed to handle a datagram from %s:%d: %s", source[0], source[1], _describe(exc))

    def _send(self, data: bytes, target: Address) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(data, target)
        except OSError as exc:
            log.warning("send to %s:%d failed: %s", target[0], target[1], exc.strerror)

    def _local_host(self, peer: Address) -> str:
        """Our address as ``peer`` sees it (for Contact, Via and SDP): the bound one, or the routed one."""
        if self._host not in _WILDCARDS:
            return self._host
        if peer[0] not in self._local_hosts:
            family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(peer)  # UDP connect sends nothing; it only picks the route
                self._local_hosts[peer[0]] = probe.getsockname()[0]
        return self._local_hosts[peer[0]]

    def _close(self) -> None:
        for s in (self._sock, self._media, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._sock = self._media = self._wake_r = self._wake_w = None


def _discard(sock: socket.socket) -> None:
    """Drain RTP (or the wake-up byte) without looking at it."""
    for _ in range(64):
        try:
            sock.recv(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            continue


def _describe(exc: BaseException) -> str:
    """Exception type and where it was raised, but not its message: it could quote a header."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"
