"""The one adapter over sippy's SIP message classes: parse datagrams, build replies and BYEs.

sippy (untyped) does the SIP grammar: start lines, header parsing including
compact forms and comma-separated values, address/URI/Via/digest header
classes, and serialisation with a correct Content-Length. This module wraps it
in a small typed surface so the rest of the sandbox never touches a sippy
object, and adds what a UAS must do that sippy leaves to its transaction layer:
a To-tag on responses, ``received``/``rport`` on the top Via (RFC 3581), Contact
on dialog-creating responses.

Datagrams are decoded as latin-1 so that byte counts equal character counts and
a stray UTF-8 display name round-trips unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sippy.MsgBody import MsgBody
from sippy.SipCallId import SipCallId
from sippy.SipContentType import SipContentType
from sippy.SipFrom import SipFrom
from sippy.SipHeader import SipHeader
from sippy.SipMaxForwards import SipMaxForwards
from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse
from sippy.SipTo import SipTo
from sippy.SipURL import SipURL
from sippy.SipVia import SipVia

from sandbox.digest import DigestAnswer
from shared.errors import PermanentError

Address = tuple[str, int]
SERVER_NAME = "sandbox-pbx"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"


class SipMessageError(PermanentError):
    """A datagram that is not a SIP message we can answer (never carries the datagram's text)."""


@dataclass(frozen=True)
class TxKey:
    """Identifies a server transaction: what a retransmission repeats (RFC 3261 17.2.3)."""

    call_id: str
    cseq: int
    method: str
    branch: str


def new_tag() -> str:
    """A random To/From tag."""
    return secrets.token_hex(6)


def parse(data: bytes, source: Address) -> Request | Response | None:
    """Parse one datagram; None for a keep-alive (blank lines), SipMessageError for garbage."""
    text = data.decode("latin-1")
    if not text.strip():
        return None
    try:
        if text.startswith("SIP/"):
            return Response(SipResponse(text))
        request = Request(SipRequest(text), source)
        request.key()  # touches Call-ID, CSeq and Via so a broken one fails here, not later
    except Exception as exc:  # sippy raises bare Exception, ValueError, IndexError...
        raise SipMessageError(f"unparseable SIP message ({type(exc).__name__})") from None
    return request


class Response:
    """A response the PBX received (to its BYE)."""

    def __init__(self, msg: Any) -> None:
        self._msg = msg
        self.code: int = int(msg.scode)
        self.call_id: str = str(msg.getHFBody("call-id"))
        cseq, method = msg.getHFBody("cseq").getCSeq()
        self.cseq: int = int(cseq)
        self.method: str = str(method)


class Request:
    """A request the PBX received, with the accessors the handlers need."""

    def __init__(self, msg: Any, source: Address) -> None:
        self._msg = msg
        self.source = source
        self.method: str = str(msg.getMethod()).upper()

    @property
    def call_id(self) -> str:
        """The Call-ID header value."""
        return str(self._msg.getHFBody("call-id"))

    @property
    def cseq(self) -> int:
        """The CSeq number."""
        return int(self._msg.getHFBody("cseq").getCSeqNum())

    @property
    def number(self) -> str:
        """The Request-URI user part, percent-decoded ('' when there is none)."""
        return str(self._msg.getRURI().username or "")

    @property
    def from_user(self) -> str:
        """The user part of the From URI (the account name on a REGISTER)."""
        return str(self._msg.getHFBody("from").getUrl().username or "")

    @property
    def to_tag(self) -> str | None:
        """The To tag: set on requests inside a dialog."""
        tag = self._msg.getHFBody("to").getTag()
        return None if tag is None else str(tag)

    @property
    def sdp(self) -> str | None:
        """The body text, when it is SDP."""
        body = self._msg.getBody()
        if body is None or body.getType() != "application/sdp":
            return None
        return str(body.localStr())

    def key(self) -> TxKey:
        """This request's server-transaction key (ACK for a 2xx has a fresh branch)."""
        branch = self._msg.getHFBody("via").getBranch() or ""
        cseq, _method = self._msg.getHFBody("cseq").getCSeq()
        return TxKey(self.call_id, int(cseq), self.method, str(branch))

    def contact_uri(self) -> str | None:
        """The first Contact URI (where a UA wants in-dialog requests sent)."""
        contacts = [c for c in self._msg.getHFBodys("contact") if not c.asterisk]
        return str(contacts[0].getUrl()) if contacts else None

    def expires_header(self) -> int | None:
        """The Expires header in seconds, when present and numeric."""
        values = self._msg.getHFBodys("expires")
        try:
            return int(values[0].number) if values else None
        except (TypeError, ValueError):
            return None

    def contacts(self) -> list[tuple[str, int | None]]:
        """REGISTER bindings as (uri, expires param or None); ('*', None) for the wildcard."""
        result: list[tuple[str, int | None]] = []
        for contact in self._msg.getHFBodys("contact"):
            if contact.asterisk:
                result.append(("*", None))
                continue
            raw = contact.getUri().getParam("expires")
            expires = int(raw) if raw is not None and str(raw).isdigit() else None
            result.append((str(contact.getUrl()), expires))
        return result

    def digest_answers(self, header: str) -> list[DigestAnswer]:
        """Digest credentials in ``header`` ('authorization' or 'proxy-authorization'); bad ones skipped."""
        answers: list[DigestAnswer] = []
        for hf in self._msg.getHFs(header):
            try:
                auth = hf.getBody()
            except (ValueError, IndexError):
                continue
            username, realm, nonce, uri, response = (auth.username, auth.realm, auth.nonce, auth.uri,
                                                     auth.response)
            if None in (username, realm, nonce, uri, response):
                continue
            answers.append(DigestAnswer(str(username), str(realm), str(nonce), str(uri), str(response),
                                        algorithm=auth.algorithm, qop=auth.qop,
                                        nc=auth.nc, cnonce=auth.cnonce))
        return answers

    def response(
        self,
        code: int,
        reason: str,
        *,
        to_tag: str | None = None,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        sdp: str | None = None,
    ) -> bytes:
        """Serialise a response to this request (Via, From, To, Call-ID, CSeq copied by sippy)."""
        resp = self._msg.genResponse(code, reason)
        to = resp.getHFBody("to")
        if to_tag is not None and to.getTag() is None:
            to.setTag(to_tag)
        via = resp.getHFBody("via")
        host, port = self.source
        if "rport" in via.params or via.hostname != host:
            via.setParam("received", host)
        if "rport" in via.params:
            via.setParam("rport", str(port))
        if contact is not None:
            resp.appendHeader(SipHeader(name="contact", bodys=contact))
        for name, value in headers:
            resp.appendHeader(SipHeader(name=name, bodys=value))
        resp.appendHeader(SipHeader(name="server", bodys=SERVER_NAME))
        if sdp is not None:
            resp.setBody(MsgBody(sdp, mtype=SipContentType("application/sdp")))
        return str(resp).encode("latin-1")

    def header(self, name: str) -> str | None:
        """The first value of a header, as text (None when absent)."""
        values = self._msg.getHFBodys(name.lower())
        return str(values[0]) if values else None

    def bye(self, *, local_tag: str, via_host: str, via_port: int, cseq: int) -> bytes:
        """The BYE the PBX (the callee of this INVITE) sends to end the dialog it created."""
        return self._in_dialog("BYE", local_tag=local_tag, via_host=via_host, via_port=via_port, cseq=cseq)

    def notify_sipfrag(self, *, local_tag: str, via_host: str, via_port: int, cseq: int, sipfrag: str) -> bytes:
        """The final NOTIFY of a REFER subscription (RFC 3515): the transfer's outcome as a sipfrag."""
        return self._in_dialog(
            "NOTIFY", local_tag=local_tag, via_host=via_host, via_port=via_port, cseq=cseq,
            headers=(("Event", "refer"), ("Subscription-State", "terminated;reason=noresource")),
            body=(sipfrag + "\r\n", "message/sipfrag;version=2.0"),
        )

    def _in_dialog(
        self, method: str, *, local_tag: str, via_host: str, via_port: int, cseq: int,
        headers: Iterable[tuple[str, str]] = (), body: tuple[str, str] | None = None,
    ) -> bytes:
        """A request the PBX (the callee of this INVITE) sends inside the dialog it created."""
        invite = self._msg
        target = self.contact_uri() or str(invite.getHFBody("from").getUrl())
        via = SipVia(f"SIP/2.0/UDP {via_host}:{via_port};rport")
        via.parse()
        via.genBranch()
        from_hf = SipFrom(str(invite.getHFBody("to")))
        from_hf.parse()
        if from_hf.getTag() is None:
            from_hf.setTag(local_tag)
        request = SipRequest(
            method=method,
            ruri=SipURL(target),
            via=via,
            fr0m=from_hf,
            to=SipTo(str(invite.getHFBody("from"))),
            callid=SipCallId(self.call_id),
            cseq=cseq,
            maxforwards=SipMaxForwards(number=70),
            target=self.source,
            user_agent=SERVER_NAME,
        )
        for name, value in headers:
            request.appendHeader(SipHeader(name=name, bodys=value))
        if body is not None:
            request.setBody(MsgBody(body[0], mtype=SipContentType(body[1])))
        return str(request).encode("latin-1")
