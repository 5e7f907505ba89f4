"""sipp as the real SIP peer of the test suite: start UAS scenarios, read what they saw.

Scenarios live in ``tests/sipp/*.xml`` (each describes itself at the top).
:func:`start_sipp_uas` runs one on a free 127.0.0.1 port, waits until its
socket is bound, and traces every SIP message to a file in the given
directory; the returned :class:`SippPeer` parses that trace, so a test can
assert on what went over the wire (Call-IDs, Request-URIs, digests, overlap
of calls to one number). The ``sipp_uas`` fixture is a factory that stops
every peer it started at teardown.

Keys every scenario may use (override any with ``keys=``): ``username``,
``password``, ``realm``, ``reg_expires`` (see :data:`DEFAULT_KEYS`).
Everything binds to loopback only, sipp's control and media sockets included,
and sipp dies with the test process (PR_SET_PDEATHSIG) or after ``timeout_s``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest

from tests.support.needs import need_program

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "sipp"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
HOST = "127.0.0.1"
DEFAULT_KEYS: Mapping[str, str] = {
    "username": "dialer-test",
    "password": "not-a-real-secret",
    "realm": "sipdialer.test",
    "reg_expires": "300",
}
SippTransport = Literal["udp", "tcp"]
_SIPP_TRANSPORT = {"udp": "u1", "tcp": "t1"}
_SOCK_TYPE = {"udp": socket.SOCK_DGRAM, "tcp": socket.SOCK_STREAM}
_BLOCK_START = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.M)
_PR_SET_PDEATHSIG = 1

try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: rely on sipp's -timeout alone
    _prctl = None


def _die_with_parent() -> None:
    """Runs in the forked child before exec: sipp gets SIGTERM when the test process dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from sipp's trace; ``direction`` is from sipp's side."""

    direction: Literal["rx", "tx"]
    at: datetime
    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        return self.start_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        return None if self.is_request else int(self.start_line.split(" ", 2)[1])

    @property
    def request_uri(self) -> str | None:
        return self.start_line.split(" ")[1] if self.is_request else None

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or self.header("i") or ""

    @property
    def cseq_method(self) -> str:
        return (self.header("CSeq") or " ").split()[-1]


@dataclass(frozen=True)
class DialogSeen:
    """One INVITE dialog as sipp saw it, from the first INVITE to its last message."""

    call_id: str
    request_uri: str
    user: str
    started_at: datetime
    ended_at: datetime
    final_status: int | None
    answered: bool


def parse_trace(text: str) -> list[SipMessage]:
    """Messages of a sipp ``-trace_msg`` file, in order."""
    messages: list[SipMessage] = []
    starts = list(_BLOCK_START.finditer(text))
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        block = text[match.end() : end].strip("\r\n")
        lines = block.splitlines()
        if not lines or " message " not in lines[0]:
            continue
        direction: Literal["rx", "tx"] = "rx" if " received " in lines[0] else "tx"
        rest = [line.rstrip("\r") for line in lines[1:]]
        while rest and not rest[0].strip():
            rest.pop(0)
        if not rest:
            continue
        start_line, headers, body_lines, in_body = rest[0], [], [], False
        for line in rest[1:]:
            if in_body:
                body_lines.append(line)
            elif not line.strip():
                in_body = True
            elif ":" in line:
                key, value = line.split(":", 1)
                headers.append((key.strip(), value.strip()))
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").astimezone(UTC)
        messages.append(SipMessage(direction, at, start_line, tuple(headers), "\n".join(body_lines).strip()))
    return messages


def user_part(uri: str) -> str:
    """``sip:+8613900001111@host;x`` -> ``+8613900001111``."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0] if "@" in rest else ""


def dialogs_from(messages: Sequence[SipMessage]) -> list[DialogSeen]:
    """Every Call-ID that carried an INVITE, in order of its first INVITE."""
    by_call: dict[str, list[SipMessage]] = {}
    for msg in messages:
        by_call.setdefault(msg.call_id, []).append(msg)
    seen: list[DialogSeen] = []
    for call_id, msgs in by_call.items():
        invites = [m for m in msgs if m.direction == "rx" and m.method == "INVITE"]
        if not invites:
            continue
        finals = [m for m in msgs if m.status is not None and m.status >= 200 and m.cseq_method == "INVITE"]
        final = finals[-1].status if finals else None
        uri = invites[0].request_uri or ""
        seen.append(
            DialogSeen(
                call_id=call_id,
                request_uri=uri,
                user=user_part(uri),
                started_at=invites[0].at,
                ended_at=msgs[-1].at,
                final_status=final,
                answered=final is not None and 200 <= final < 300,
            )
        )
    seen.sort(key=lambda d: d.started_at)
    return seen


def overlapping_dialogs(dialogs: Sequence[DialogSeen]) -> list[tuple[DialogSeen, DialogSeen]]:
    """Pairs of dialogs to the same user part whose lifetimes overlap (a number called twice at once)."""
    pairs: list[tuple[DialogSeen, DialogSeen]] = []
    by_user: dict[str, list[DialogSeen]] = {}
    for dialog in dialogs:
        by_user.setdefault(dialog.user, []).append(dialog)
    for group in by_user.values():
        group.sort(key=lambda d: d.started_at)
        latest: DialogSeen | None = None  # the earlier dialog that ends last
        for dialog in group:
            if latest is not None and dialog.started_at < latest.ended_at:
                pairs.append((latest, dialog))
            if latest is None or dialog.ended_at > latest.ended_at:
                latest = dialog
    return pairs


def _auth_params(value: str) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', value.removeprefix("Digest"))}


def digest_matches(message: SipMessage, *, username: str, password: str, header: str = "Proxy-Authorization") -> bool:
    """Whether ``message`` carries a correct MD5 digest for username/password (RFC 2617)."""
    value = message.header(header)
    if not value or not value.strip().startswith("Digest") or message.method is None:
        return False
    p = _auth_params(value.strip())
    if p.get("username") != username:
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # SIP digest is MD5 by definition

    ha1 = md5(f"{username}:{p.get('realm', '')}:{password}")
    ha2 = md5(f"{message.method}:{p.get('uri', '')}")
    if p.get("qop"):
        expected = md5(f"{ha1}:{p.get('nonce', '')}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}")
    else:
        expected = md5(f"{ha1}:{p.get('nonce', '')}:{ha2}")
    return p.get("response") == expected


class SippPeer:
    """A running sipp UAS and the files it writes."""

    def __init__(
        self, scenario: str, port: int, transport: SippTransport, workdir: Path, keys: Mapping[str, str]
    ) -> None:
        self.scenario = scenario
        self.host = HOST
        self.port = port
        self.transport = transport
        self.workdir = workdir
        self.keys = dict(keys)
        self.message_log = workdir / f"{scenario}-{port}-messages.log"
        self.error_log = workdir / f"{scenario}-{port}-errors.log"
        self.stderr_log = workdir / f"{scenario}-{port}-stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"SippPeer({self.scenario!r}, {self.address}, {self.transport})"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the value for SipAccountConfig.registrar."""
        return f"{self.host}:{self.port}"

    def messages(self) -> list[SipMessage]:
        if not self.message_log.exists():
            return []
        return parse_trace(self.message_log.read_text(errors="replace"))

    def received(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages() if m.direction == "rx" and m.method == method]

    def sent_statuses(self, cseq_method: str = "INVITE") -> list[int]:
        return [m.status for m in self.messages() if m.status is not None and m.direction == "tx"
                and m.cseq_method == cseq_method]

    def dialogs(self) -> list[DialogSeen]:
        return dialogs_from(self.messages())

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Terminate sipp (it flushes its trace on SIGTERM) and wait for it."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def free_port(transport: SippTransport = "udp") -> int:
    """A port the OS just had free on 127.0.0.1 (the usual small race is retried by the caller)."""
    with socket.socket(socket.AF_INET, _SOCK_TYPE[transport]) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int, transport: SippTransport) -> bool:
    with socket.socket(socket.AF_INET, _SOCK_TYPE[transport]) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def sipp_command(
    scenario_path: Path, port: int, *, transport: SippTransport, peer: SippPeer | None,
    keys: Mapping[str, str], pause_ms: int | None, timeout_s: float, extra_args: Sequence[str],
    host: str = HOST,
) -> list[str]:
    cmd = [
        SIPP, "-sf", str(scenario_path), "-i", host, "-p", str(port), "-t", _SIPP_TRANSPORT[transport],
        "-mi", host, "-ci", host, "-nostdin", "-timeout", f"{timeout_s:g}s", "-skip_rlimit",
    ]
    if peer is not None:
        cmd += ["-trace_msg", "-message_file", str(peer.message_log),
                "-trace_err", "-error_file", str(peer.error_log)]
    for key, value in keys.items():
        cmd += ["-key", key, value]
    if pause_ms is not None:
        cmd += ["-d", str(pause_ms)]
    return cmd + list(extra_args)


def start_sipp_uas(
    scenario: str,
    workdir: Path,
    *,
    keys: Mapping[str, str] | None = None,
    transport: SippTransport = "udp",
    pause_ms: int | None = None,
    trace: bool = True,
    timeout_s: float = 300.0,
    extra_args: Sequence[str] = (),
    ready_timeout_s: float = 10.0,
) -> SippPeer:
    """Start ``tests/sipp/<scenario>.xml`` as a UAS on a free loopback port; returns once it listens.

    ``pause_ms`` sets sipp's ``-d`` (used by ``<pause/>``, e.g. remote_bye's
    talk time). ``trace=False`` skips the message trace (for load: tracing
    costs sipp throughput). The caller must ``stop()`` the peer; the
    ``sipp_uas`` fixture does that for you.
    """
    path = SCENARIO_DIR / f"{scenario}.xml"
    if not path.exists():
        raise FileNotFoundError(f"no sipp scenario {path}")
    all_keys = {**DEFAULT_KEYS, **(keys or {})}
    workdir.mkdir(parents=True, exist_ok=True)
    last_output = ""
    for _ in range(3):  # a free port can be taken by someone else before sipp binds it
        port = free_port(transport)
        peer = SippPeer(scenario, port, transport, workdir, all_keys)
        cmd = sipp_command(path, port, transport=transport, peer=peer if trace else None, keys=all_keys,
                           pause_ms=pause_ms, timeout_s=timeout_s, extra_args=extra_args)
        with open(peer.stderr_log, "wb") as stderr:
            peer.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                cwd=workdir, preexec_fn=_die_with_parent,  # only prctl runs there
            )
        deadline = time.monotonic() + ready_timeout_s
        while peer.process.poll() is None and time.monotonic() < deadline:
            if _port_in_use(port, transport):
                return peer
            time.sleep(0.01)  # polling a foreign process's bind: there is no event to wait on
        peer.stop()
        last_output = peer.stderr_log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"sipp {scenario} did not start listening: {last_output}")


SippFactory = Callable[..., SippPeer]


@pytest.fixture
def sipp_uas(tmp_path: Path) -> Iterator[SippFactory]:
    """Factory: ``sipp_uas("carrier", keys={...})`` -> a running SippPeer, stopped at teardown."""
    need_program("sipp", "Debian: apt-get install sip-tester; .ci/run installs it", SIPP)
    peers: list[SippPeer] = []

    def start(scenario: str, **kwargs: object) -> SippPeer:
        peer = start_sipp_uas(scenario, tmp_path / "sipp", **kwargs)  # type: ignore[arg-type]
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        with contextlib.suppress(Exception):
            peer.stop()
