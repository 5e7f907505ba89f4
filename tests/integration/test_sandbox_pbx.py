"""The sandbox PBX against a real SIP peer: sipp as the UAC, everything on 127.0.0.1.

Each test starts its own SandboxPbx on an OS-chosen port, writes a sipp UAC
scenario to tmp_path and runs sipp for one call; sipp exits 0 only when every
expected message arrived in order (and header checks marked check_it passed).
Afterwards the test waits on the PBX's call log, never on a sleep.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.calls import CallRecord, EndedBy
from sandbox.plan import Plan, parse_plan_text
from sandbox.server import SandboxPbx
from tests.support.needs import need_program

pytestmark = pytest.mark.integration

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
PASSWORD = "fake-integration-password"
WRONG_PASSWORD = "not-the-fake-password"

PLAN = f"""
realm = "sandbox"
require_plus_prefix = true
challenge_invite = true
qop_auth = true

[[users]]
username = "demo"
password = "{PASSWORD}"

[[rules]]
match = "+8613900001111"
action = "answer"
hangup_after_s = 0.2

[[rules]]
match = "+8613900001122"
action = "answer"
hangup_after_s = 60

[[rules]]
match = "+8613900002222"
action = "busy"

[[rules]]
match = "+8613900003333"
action = "ring"

[[rules]]
match = "+8613900004444"
action = "unavailable_once"
hangup_after_s = 60

[default]
action = "not_found"
"""

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000"""


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _need_sipp() -> None:
    need_program("sipp", "Debian: apt-get install sip-tester; .ci/run installs it", SIPP)


@pytest.fixture
def start_pbx() -> Iterator[Callable[..., SandboxPbx]]:
    """Start a SandboxPbx on a free loopback port with PLAN (top-level settings overridable or added)."""
    started: list[SandboxPbx] = []

    def start(*, preamble: str = "", **settings: bool) -> SandboxPbx:
        text = preamble + PLAN  # a preamble adds top-level settings (TOML wants them before any table)
        for key, value in settings.items():
            text = text.replace(f"{key} = true", f"{key} = {str(value).lower()}")
        pbx = SandboxPbx(_plan(text), host="127.0.0.1", port=0)
        pbx.start()
        started.append(pbx)
        return pbx

    yield start
    for pbx in started:
        pbx.stop()


def _plan(text: str) -> Plan:
    return parse_plan_text(text, "integration-plan")


# --- sipp scenario building -------------------------------------------------------------------------


def request(method: str, number: str, cseq: int, *, branch: str = "[branch]", ruri: str | None = None,
            to_tag: bool = False, password: str | None = None, sdp: bool = False) -> str:
    """A sipp <send> of one request from demo to ``number``."""
    lines = [
        f"{method} {ruri or f'sip:{number}@[remote_ip]:[remote_port]'} SIP/2.0",
        f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch};rport",
        "From: <sip:demo@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]",
        f"To: <sip:{number}@[remote_ip]:[remote_port]>{'[peer_tag_param]' if to_tag else ''}",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:demo@[local_ip]:[local_port]>",
        "Max-Forwards: 70",
    ]
    if method == "REGISTER":
        lines.append("Expires: 300")
    if password is not None:
        lines.append(f"[authentication username=demo password={password}]")
    if sdp:
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", "", SDP]
    else:
        lines += ["Content-Length: 0", ""]
    retrans = "" if method == "ACK" else ' retrans="500"'
    return f"<send{retrans}><![CDATA[\n" + "\n".join(lines) + "\n\n]]></send>"


def recv(code: int | str, *, optional: bool = False, auth: bool = False, rrs: bool = False,
         check_header: tuple[str, str] | None = None, check_body: str | None = None) -> str:
    """A sipp <recv> of a response code (or of a request when ``code`` is a method name)."""
    what = f'request="{code}"' if isinstance(code, str) else f'response="{code}"'
    attrs = what + "".join(f' {name}="true"' for name, on in
                           (("optional", optional), ("auth", auth), ("rrs", rrs)) if on)
    checks = []
    if check_header is not None:
        header, regexp = check_header
        checks.append(f'<ereg regexp="{_attr(regexp)}" search_in="hdr" header="{header}:" check_it="true" '
                      f'assign_to="checked"/>')
    if check_body is not None:
        checks.append(f'<ereg regexp="{_attr(check_body)}" search_in="body" check_it="true" '
                      f'assign_to="checked"/>')
    if not checks:
        return f"<recv {attrs}/>"
    return f"<recv {attrs}><action>{''.join(checks)}</action></recv>"


def reply_ok() -> str:
    """A sipp <send> of 200 OK to the request just received (the PBX's BYE)."""
    return ("<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n"
            "[last_CSeq:]\nContent-Length: 0\n\n]]></send>")


def authenticated_invite(number: str, password: str = PASSWORD) -> list[str]:
    """INVITE, 407 challenge, ACK, INVITE again with credentials, optional 100 Trying."""
    return [
        request("INVITE", number, 1, sdp=True),
        recv(407, auth=True, check_header=("Proxy-Authenticate", 'Digest realm="sandbox", nonce="[0-9a-f]{32}"')),
        request("ACK", number, 1, branch="[branch-2]", to_tag=True),
        request("INVITE", number, 2, sdp=True, password=password),
        recv(100, optional=True),
    ]


def ack_2xx(number: str, cseq: int) -> str:
    """The ACK for a 200 OK: to the PBX's Contact, in the dialog."""
    return request("ACK", number, cseq, ruri="[next_url]", to_tag=True)


def run_sipp(tmp_path: Path, pbx: SandboxPbx, steps: list[str], name: str = "uac") -> None:
    """Run one sipp call through ``steps``; fail with sipp's message trace unless it succeeded."""
    scenario = tmp_path / f"{name}.xml"
    if any('assign_to="checked"' in step for step in steps):
        steps = [*steps, '<Reference variables="checked"/>']  # sipp refuses a variable that is never read
    scenario.write_text('<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
                        f'<scenario name="{name}">\n' + "\n".join(steps) + "\n</scenario>\n")
    messages = tmp_path / f"{name}-messages.log"
    errors = tmp_path / f"{name}-errors.log"
    command = [
        SIPP, f"127.0.0.1:{pbx.port}", "-sf", str(scenario), "-m", "1",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(_free_udp_port()), "-mp", str(_free_udp_port()),
        "-nostdin", "-timeout", "30s", "-timeout_error", "-recv_timeout", "10000",
        "-trace_msg", "-message_file", str(messages), "-trace_err", "-error_file", str(errors),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        trace = messages.read_text(errors="replace")[-6000:] if messages.exists() else ""
        errs = errors.read_text(errors="replace")[-2000:] if errors.exists() else ""
        pytest.fail(f"sipp exited {result.returncode}\n{result.stderr[-2000:]}\n{errs}\n{trace}")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def wait_for(pbx: SandboxPbx, predicate: Callable[[list[CallRecord]], bool]) -> list[CallRecord]:
    assert pbx.wait_for_calls(predicate, timeout=10), pbx.call_log
    return pbx.call_log


# --- REGISTER ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("qop", [True, False], ids=["qop-auth", "no-qop"])
def test_register_challenged_then_accepted(tmp_path: Path, start_pbx: Callable[..., SandboxPbx],
                                           qop: bool) -> None:
    """REGISTER gets 401 with a Digest MD5 challenge, then 200 with the binding for the right password."""
    pbx = start_pbx(qop_auth=qop)
    challenge = 'Digest realm="sandbox", nonce="[0-9a-f]{32}", algorithm=MD5' + (', qop="auth"' if qop else "$")
    run_sipp(tmp_path, pbx, [
        request("REGISTER", "demo", 1, ruri="sip:[remote_ip]:[remote_port]"),
        recv(401, auth=True, check_header=("WWW-Authenticate", challenge)),
        request("REGISTER", "demo", 2, ruri="sip:[remote_ip]:[remote_port]", password=PASSWORD),
        recv(200, check_header=("Contact", "<sip:demo@127.0.0.1:[0-9]+>;expires=300")),
    ])
    assert list(pbx.registrations()) == ["demo"]


def test_register_wrong_password_forbidden(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """A digest computed with the wrong password gets 403 and no binding."""
    pbx = start_pbx()
    run_sipp(tmp_path, pbx, [
        request("REGISTER", "demo", 1, ruri="sip:[remote_ip]:[remote_port]"),
        recv(401, auth=True),
        request("REGISTER", "demo", 2, ruri="sip:[remote_ip]:[remote_port]", password=WRONG_PASSWORD),
        recv(403),
    ])
    assert pbx.registrations() == {}


def test_logs_name_requests_but_never_credentials(tmp_path: Path, start_pbx: Callable[..., SandboxPbx],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """One log line per request and response (method, user/number, code); no password, no Authorization."""
    caplog.set_level(logging.DEBUG, logger="sandbox")
    pbx = start_pbx()
    run_sipp(tmp_path, pbx, [
        request("REGISTER", "demo", 1, ruri="sip:[remote_ip]:[remote_port]"),
        recv(401, auth=True),
        request("REGISTER", "demo", 2, ruri="sip:[remote_ip]:[remote_port]", password=PASSWORD),
        recv(200),
    ])
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("sandbox")]
    assert sum(line.startswith("<- REGISTER demo ") for line in lines) == 2
    assert any(line.startswith("-> 401 Unauthorized REGISTER demo ") for line in lines)
    assert any(line.startswith("-> 200 OK REGISTER demo ") for line in lines)
    text = "\n".join(lines) + repr(pbx)
    for secret in (PASSWORD, "Authorization", "response=", "Digest"):
        assert secret not in text


# --- INVITE -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["13900001111", "8613900001111"], ids=["national", "country-code"])
def test_invite_without_plus_is_not_found(tmp_path: Path, start_pbx: Callable[..., SandboxPbx],
                                          number: str) -> None:
    """After authentication, the national and bare country-code forms get 404; the caller ACKs it."""
    pbx = start_pbx()
    run_sipp(tmp_path, pbx, [*authenticated_invite(number), recv(404),
                             request("ACK", number, 2, branch="[branch-2]", to_tag=True)])
    log = wait_for(pbx, lambda calls: len(calls) == 2 and calls[1].final_code is not None)
    assert [r.final_code for r in log] == [407, 404]


def test_invite_plus_form_answered_then_pbx_hangs_up(tmp_path: Path,
                                                     start_pbx: Callable[..., SandboxPbx]) -> None:
    """+86 form: 407, then 180 and 200 with an SDP answer; after ACK the PBX sends BYE, which we answer."""
    pbx = start_pbx()
    number = "+8613900001111"
    run_sipp(tmp_path, pbx, [
        *authenticated_invite(number),
        recv(180),
        recv(200, rrs=True, check_body="m=audio [0-9]+ RTP/AVP 0"),
        ack_2xx(number, 2),
        recv("BYE"),
        reply_ok(),
    ])
    log = wait_for(pbx, lambda calls: len(calls) == 2 and calls[1].ended_by is EndedBy.PBX)
    assert [r.final_code for r in log] == [407, 200]
    assert log[1].number == number and log[1].answered_at is not None


def test_caller_hangs_up_first(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """A BYE from the caller before the PBX's hangup timer gets 200 and ends the call as the caller's."""
    pbx = start_pbx()
    number = "+8613900001122"
    run_sipp(tmp_path, pbx, [
        *authenticated_invite(number),
        recv(180),
        recv(200, rrs=True),
        ack_2xx(number, 2),
        request("BYE", number, 3, ruri="[next_url]", to_tag=True),
        recv(200),
    ])
    log = wait_for(pbx, lambda calls: len(calls) == 2 and calls[1].ended_at is not None)
    assert log[1].ended_by is EndedBy.CALLER


def test_invite_with_wrong_password_forbidden(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """Proxy-Authorization computed with a wrong password gets 403."""
    pbx = start_pbx()
    number = "+8613900001111"
    run_sipp(tmp_path, pbx, [
        request("INVITE", number, 1, sdp=True),
        recv(407, auth=True),
        request("ACK", number, 1, branch="[branch-2]", to_tag=True),
        request("INVITE", number, 2, sdp=True, password=WRONG_PASSWORD),
        recv(403),
        request("ACK", number, 2, branch="[branch-2]", to_tag=True),
    ])


def test_invite_unchallenged_when_plan_says_so(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """With challenge_invite = false the first INVITE is routed at once."""
    pbx = start_pbx(challenge_invite=False)
    number = "+8613900001122"
    run_sipp(tmp_path, pbx, [
        request("INVITE", number, 1, sdp=True),
        recv(100, optional=True),
        recv(180),
        recv(200, rrs=True),
        ack_2xx(number, 1),
        request("BYE", number, 2, ruri="[next_url]", to_tag=True),
        recv(200),
    ])
    log = wait_for(pbx, lambda calls: len(calls) == 1 and calls[0].ended_at is not None)
    assert [r.final_code for r in log] == [200]


def test_busy(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """A busy number gets 486 Busy Here."""
    pbx = start_pbx()
    number = "+8613900002222"
    run_sipp(tmp_path, pbx, [*authenticated_invite(number), recv(486),
                             request("ACK", number, 2, branch="[branch-2]", to_tag=True)])
    log = wait_for(pbx, lambda calls: len(calls) == 2 and calls[1].final_code is not None)
    assert [r.final_code for r in log] == [407, 486]


def test_ring_then_cancel(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """A ringing number never answers; CANCEL gets 200 and the INVITE 487 Request Terminated."""
    pbx = start_pbx()
    number = "+8613900003333"
    steps = authenticated_invite(number)
    invite_index = len(steps) - 2  # the authenticated INVITE; CANCEL must reuse its branch
    steps.append(recv(180))
    steps.append(request("CANCEL", number, 2, branch=f"[branch-{len(steps) - invite_index}]"))
    steps += [recv(200), recv(487)]
    steps.append(request("ACK", number, 2, branch=f"[branch-{len(steps) - invite_index}]", to_tag=True))
    run_sipp(tmp_path, pbx, steps)
    log = wait_for(pbx, lambda calls: len(calls) == 2 and calls[1].final_code == 487)
    assert log[1].ended_by is EndedBy.CANCEL


def test_ring_out_ends_with_480_when_nobody_cancels(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """A ringing number whose caller never CANCELs gets 480 when the PBX's no-answer timer runs out.

    As a carrier's network does: without it the dialog would stay in the PBX until the server stops.
    """
    pbx = start_pbx(preamble="no_answer_after_s = 0.5\n")
    number = "+8613900003333"
    steps = [*authenticated_invite(number), recv(180), recv(480)]
    invite_index = len(steps) - 4  # the authenticated INVITE; the ACK of its 480 reuses its branch
    steps.append(request("ACK", number, 2, branch=f"[branch-{len(steps) - invite_index}]", to_tag=True))
    run_sipp(tmp_path, pbx, steps)
    log = wait_for(pbx, lambda calls: len(calls) == 2 and calls[1].final_code == 480)
    assert log[1].ended_by is EndedBy.NO_ANSWER
    assert log[1].answered_at is None


def test_unavailable_once_then_answered(tmp_path: Path, start_pbx: Callable[..., SandboxPbx]) -> None:
    """The first call to an unavailable_once number gets 503; the next call to it is answered."""
    pbx = start_pbx()
    number = "+8613900004444"
    run_sipp(tmp_path, pbx, [*authenticated_invite(number), recv(503),
                             request("ACK", number, 2, branch="[branch-2]", to_tag=True)], name="first")
    run_sipp(tmp_path, pbx, [
        *authenticated_invite(number),
        recv(180),
        recv(200, rrs=True),
        ack_2xx(number, 2),
        request("BYE", number, 3, ruri="[next_url]", to_tag=True),
        recv(200),
    ], name="second")
    log = wait_for(pbx, lambda calls: len(calls) == 4 and calls[3].ended_at is not None)
    assert [r.final_code for r in log] == [407, 503, 407, 200]


# --- robustness (a plain UDP socket as the peer) ----------------------------------------------------


def _udp_client() -> socket.socket:
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(10)  # a guard against hanging, not an assertion about timing
    return client


def _raw(method: str, port: int, client_port: int, *, number: str = "+8613900001111") -> bytes:
    return (
        f"{method} sip:{number}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{client_port};branch=z9hG4bK-raw-{method};rport\r\n"
        f"From: <sip:demo@127.0.0.1:{client_port}>;tag=raw1\r\n"
        f"To: <sip:{number}@127.0.0.1:{port}>\r\n"
        f"Call-ID: raw-{method}@127.0.0.1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_garbage_does_not_kill_the_server(start_pbx: Callable[..., SandboxPbx]) -> None:
    """Binary junk, a truncated request and a request without headers are dropped; OPTIONS still works."""
    pbx = start_pbx()
    with _udp_client() as client:
        target = ("127.0.0.1", pbx.port)
        for junk in (b"\x00\xff\xfe garbage", b"INVITE nonsense\r\n\r\n", b"INVITE sip:x@y SIP/2.0\r\n\r\n",
                     b"SIP/2.0 200 OK\r\n\r\n", b"\r\n\r\n"):
            client.sendto(junk, target)
        client.sendto(_raw("OPTIONS", pbx.port, client.getsockname()[1]), target)
        reply = client.recv(65535).decode("latin-1")
    assert reply.startswith("SIP/2.0 200 OK\r\n")
    assert "Call-ID: raw-OPTIONS@127.0.0.1\r\n" in reply


def test_retransmitted_invite_gets_the_same_response(start_pbx: Callable[..., SandboxPbx]) -> None:
    """A retransmitted INVITE is answered with the identical 407 (same tag, same nonce), not a new one."""
    pbx = start_pbx()
    with _udp_client() as client:
        invite = _raw("INVITE", pbx.port, client.getsockname()[1])
        client.sendto(invite, ("127.0.0.1", pbx.port))
        first = client.recv(65535)
        client.sendto(invite, ("127.0.0.1", pbx.port))
        second = client.recv(65535)
    assert first.startswith(b"SIP/2.0 407 ")
    assert second == first
    assert len(pbx.call_log) == 1
