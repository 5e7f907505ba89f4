"""The PBX's SIP behaviour: datagrams in, datagrams out, no sockets and no threads.

``PbxCore.handle`` takes one datagram and its source address; it answers
through the ``send`` callable it was given (always to the address the request
came from) and schedules later work (ring delays, the PBX's BYE,
retransmissions) on the ``Timers`` it was given. The server runs both on one
thread, so nothing here needs a lock. Call states, one per phase as in sippy's
UA vocabulary::

    PROCEEDING --200--> ANSWERED --ACK--> CONFIRMED --BYE either way--> ENDED
        \\--CANCEL / 487, or no answer in time / 480------------------^

Failures (404, 486, 503, 603, 407, 403) never create a dialog: they are final
responses retransmitted until the caller's ACK.

A callee that acts (plan fields ``press`` and ``refer``) gets its own RTP
session (:mod:`sandbox.rtp`, opened through ``open_media``): it hears the
caller's prompt, presses its keys ``press_after_s`` after the prompt starts,
and answers a REFER with 202 and a NOTIFY sipfrag 200, or with 403. What it
heard, pressed and did with a REFER lands in the call log.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from sandbox.auth import Authenticator, Verdict
from sandbox.calls import CallLog, CallRecord, EndedBy, utc_now
from sandbox.messages import ALLOW, Address, Request, Response, SipMessageError, new_tag, parse
from sandbox.plan import Plan, ReferAnswer
from sandbox.registrar import Registrar
from sandbox.routing import Outcome, Route, route
from sandbox.rtp import RtpSession
from sandbox.sdp import answer_sdp
from sandbox.timers import Timer, Timers
from sandbox.transactions import TIMEOUT_S, ResponseCache, Retransmitter

log = logging.getLogger("sandbox.pbx")

Send = Callable[[bytes, Address], None]
OpenMedia = Callable[[Request, str], RtpSession]  # (the INVITE, our address) -> the call's RTP session
CloseMedia = Callable[[RtpSession], "str | None"]  # -> the recording's path, if any
_KEY_GAP_S = 0.3
CONTACT_USER = "sandbox"


class State(Enum):
    """Phases of a routed INVITE."""

    PROCEEDING = "proceeding"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    ENDED = "ended"


@dataclass(eq=False)
class Dialog:
    """A routed INVITE that rang: it can be answered, cancelled and hung up."""

    invite: Request
    to_tag: str
    route: Route
    record: int
    state: State = State.PROCEEDING
    answered: bool = False
    timers: list[Timer] = field(default_factory=list)
    media: RtpSession | None = None
    local_cseq: int = 0

    def next_cseq(self) -> int:
        """CSeq of the next request the PBX sends in this dialog (NOTIFY, BYE)."""
        self.local_cseq += 1
        return self.local_cseq


class PbxCore:
    """Registrar, INVITE gate, number plan and dialogs, driven one datagram at a time."""

    def __init__(
        self,
        plan: Plan,
        send: Send,
        timers: Timers,
        local_host: Callable[[Address], str],
        port: int,
        media_port: int,
        call_log: CallLog,
        open_media: OpenMedia | None = None,
        close_media: CloseMedia | None = None,
    ) -> None:
        self._plan = plan
        self._send = send
        self._timers = timers
        self._local_host = local_host
        self._port = port
        self._media_port = media_port
        self._log = call_log
        self._open_media = open_media
        self._close_media = close_media
        self._notifies: dict[str, Retransmitter] = {}
        self._auth = Authenticator(plan)
        self.registrar = Registrar(plan, self._auth)
        self._responses = ResponseCache()
        self._awaiting_ack: dict[tuple[str, int], Retransmitter] = {}
        self._byes: dict[str, Retransmitter] = {}
        self._dialogs: dict[str, Dialog] = {}  # by Call-ID
        self._invites: dict[tuple[str, int], Dialog] = {}  # by (Call-ID, CSeq)
        self._calls_to: Counter[str] = Counter()
        self._handlers: dict[str, Callable[[Request], None]] = {
            "REGISTER": self._on_register,
            "INVITE": self._on_invite,
            "CANCEL": self._on_cancel,
            "BYE": self._on_bye,
            "OPTIONS": self._on_options,
            "REFER": self._on_refer,
        }

    def handle(self, data: bytes, source: Address) -> None:
        """Process one datagram from ``source``; garbage is logged and dropped."""
        try:
            msg = parse(data, source)
        except SipMessageError as exc:
            log.warning("dropped %d-byte datagram from %s:%d: %s", len(data), *source, exc)
            return
        if msg is None:
            return
        if isinstance(msg, Response):
            self._on_response(msg)
            return
        log.info("<- %s %s from %s:%d call=%s", msg.method, self._label(msg), *source, msg.call_id)
        if msg.method == "ACK":
            self._on_ack(msg)
            return
        cached = self._responses.get(msg.key())
        if cached is not None:
            log.info("-> resent last response to retransmitted %s call=%s", msg.method, msg.call_id)
            self._send(cached, source)
            return
        self._handlers.get(msg.method, self._on_unsupported)(msg)

    # --- replies -------------------------------------------------------------------------------

    def _reply(self, req: Request, code: int, reason: str, *, to_tag: str | None = None,
               headers: tuple[tuple[str, str], ...] = (), sdp: str | None = None) -> bytes:
        if to_tag is None and code > 100 and req.to_tag is None:
            to_tag = new_tag()  # RFC 3261 section 8.2.6 (headers and tags): every non-100 response carries a To tag
        contact = self._contact(req.source) if 100 < code < 300 and req.method == "INVITE" else None
        data = req.response(code, reason, to_tag=to_tag, contact=contact, headers=headers, sdp=sdp)
        self._responses.put(req.key(), data)
        # Logged before sending, so whoever sees the response can already see its log line.
        log.info("-> %d %s %s %s call=%s", code, reason, req.method, self._label(req), req.call_id)
        self._send(data, req.source)
        return data

    def _final(self, req: Request, record: int, code: int, reason: str, *, to_tag: str | None = None,
               headers: tuple[tuple[str, str], ...] = (), sdp: str | None = None,
               on_no_ack: Callable[[], None] | None = None) -> None:
        """A final INVITE response: recorded, and repeated until the caller ACKs it."""
        # Recorded before sending, so a caller that sees the response finds it in the call log.
        self._log.update(record, final_code=code, **({"answered_at": utc_now()} if code == 200 else {}))
        data = self._reply(req, code, reason, to_tag=to_tag, headers=headers, sdp=sdp)
        key = (req.call_id, req.cseq)
        self._awaiting_ack[key] = Retransmitter(self._timers, self._send, data, req.source,
                                                on_timeout=lambda: self._no_ack(key, on_no_ack))

    def _no_ack(self, key: tuple[str, int], then: Callable[[], None] | None) -> None:
        self._awaiting_ack.pop(key, None)
        log.warning("no ACK for call=%s cseq=%d", *key)
        if then is not None:
            then()

    def _label(self, req: Request) -> str:
        """What a log line names: the account for REGISTER, else the dialled number (also in-dialog)."""
        if req.method == "REGISTER":
            return req.from_user
        dialog = self._dialogs.get(req.call_id) if req.to_tag is not None else None
        return dialog.invite.number if dialog is not None else req.number

    def _contact(self, peer: Address) -> str:
        return f"<sip:{CONTACT_USER}@{_hostport(self._local_host(peer), self._port)}>"

    # --- requests ------------------------------------------------------------------------------

    def _on_register(self, req: Request) -> None:
        reply = self.registrar.handle(req)
        self._reply(req, reply.code, reply.reason, headers=reply.headers)

    def _on_options(self, req: Request) -> None:
        self._reply(req, 200, "OK", headers=(("Allow", ALLOW), ("Accept", "application/sdp")))

    def _on_unsupported(self, req: Request) -> None:
        self._reply(req, 405, "Method Not Allowed", headers=(("Allow", ALLOW),))

    def _on_invite(self, req: Request) -> None:
        if req.to_tag is not None:
            self._on_reinvite(req)
            return
        record = self._log.add(CallRecord(req.call_id, req.number, utc_now()))
        if self._plan.challenge_invite:
            check = self._auth.check(req.digest_answers("proxy-authorization"), "INVITE")
            if check.verdict in (Verdict.CHALLENGE, Verdict.STALE):
                challenge = self._auth.challenge(stale=check.verdict is Verdict.STALE)
                self._final(req, record, 407, "Proxy Authentication Required",
                            headers=(("Proxy-Authenticate", challenge),))
                return
            if check.verdict is Verdict.FORBIDDEN:
                self._final(req, record, 403, "Forbidden")
                return
        self._reply(req, 100, "Trying")
        decision = route(req.number, self._plan, calls_before=self._calls_to[req.number])
        self._calls_to[req.number] += 1
        log.info("route %s -> %s (%s) call=%s", req.number, decision.outcome.name.lower(), decision.why,
                 req.call_id)
        to_tag = new_tag()
        if decision.outcome not in (Outcome.ANSWER, Outcome.RING):
            self._final(req, record, decision.outcome.code, decision.outcome.reason, to_tag=to_tag)
            return
        dialog = Dialog(req, to_tag, decision, record)
        self._dialogs[req.call_id] = dialog
        self._invites[(req.call_id, req.cseq)] = dialog
        self._reply(req, 180, "Ringing", to_tag=to_tag)
        dialog.timers.append(self._timers.schedule(self._plan.no_answer_after_s, lambda: self._ring_out(dialog)))
        if decision.outcome is Outcome.ANSWER:
            if decision.answer_after_s > 0:
                timer = self._timers.schedule(decision.answer_after_s, lambda: self._answer(dialog))
                dialog.timers.append(timer)
            else:
                self._answer(dialog)

    def _answer(self, dialog: Dialog) -> None:
        if dialog.state is not State.PROCEEDING:
            return
        dialog.state, dialog.answered = State.ANSWERED, True
        req = dialog.invite
        self._start_media(dialog)
        sdp = answer_sdp(req.sdp, self._local_host(req.source), self._dialog_media_port(dialog),
                         secrets.randbelow(10**9))
        # RFC 3261 section 13.3.1 (2xx retransmission): a 2xx never ACKed means the caller is gone; end with BYE.
        self._final(req, dialog.record, 200, "OK", to_tag=dialog.to_tag, headers=(("Allow", ALLOW),),
                    sdp=sdp, on_no_ack=lambda: self._hangup(dialog))

    def _ring_out(self, dialog: Dialog) -> None:
        """The network's no-answer timer: a call nobody answered or cancelled ends with 480, as a carrier's does.

        Without it a ``ring`` number whose caller never sends CANCEL would hold its dialog until the server stops.
        """
        if dialog.state is not State.PROCEEDING:
            return
        self._end(dialog, EndedBy.NO_ANSWER)
        self._final(dialog.invite, dialog.record, 480, "Temporarily Unavailable", to_tag=dialog.to_tag)

    def _on_reinvite(self, req: Request) -> None:
        """A re-INVITE (session refresh, hold) in a confirmed dialog: accept it as is."""
        dialog = self._dialogs.get(req.call_id)
        if dialog is None or dialog.state is not State.CONFIRMED or dialog.to_tag != req.to_tag:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        sdp = answer_sdp(req.sdp, self._local_host(req.source), self._dialog_media_port(dialog),
                         secrets.randbelow(10**9))
        data = self._reply(req, 200, "OK", headers=(("Allow", ALLOW),), sdp=sdp)
        key = (req.call_id, req.cseq)
        self._awaiting_ack[key] = Retransmitter(self._timers, self._send, data, req.source,
                                                on_timeout=lambda: self._no_ack(key, None))

    def _on_ack(self, req: Request) -> None:
        key = (req.call_id, req.cseq)
        pending = self._awaiting_ack.pop(key, None)
        if pending is not None:
            pending.stop()
        dialog = self._invites.get(key)
        if dialog is not None and dialog.state is State.ANSWERED:
            dialog.state = State.CONFIRMED
            timer = self._timers.schedule(dialog.route.hangup_after_s, lambda: self._hangup(dialog))
            dialog.timers.append(timer)

    def _on_cancel(self, req: Request) -> None:
        dialog = self._invites.get((req.call_id, req.cseq))
        if dialog is None:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(req, 200, "OK", to_tag=dialog.to_tag)
        if dialog.state is State.PROCEEDING:
            self._end(dialog, EndedBy.CANCEL)
            self._final(dialog.invite, dialog.record, 487, "Request Terminated", to_tag=dialog.to_tag)

    def _on_bye(self, req: Request) -> None:
        dialog = self._dialogs.get(req.call_id)
        if dialog is None or not dialog.answered or dialog.to_tag != req.to_tag:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        pending = self._awaiting_ack.pop((dialog.invite.call_id, dialog.invite.cseq), None)
        if pending is not None:
            pending.stop()
        if dialog.state is not State.ENDED:
            self._end(dialog, EndedBy.CALLER)
        self._reply(req, 200, "OK")

    def _on_response(self, resp: Response) -> None:
        log.info("<- %d %s call=%s", resp.code, resp.method, resp.call_id)
        if resp.method in ("BYE", "NOTIFY") and resp.code >= 200:
            pending = (self._byes if resp.method == "BYE" else self._notifies).pop(resp.call_id, None)
            if pending is not None:
                pending.stop()

    # --- a callee that acts ----------------------------------------------------------------------

    def _start_media(self, dialog: Dialog) -> None:
        """Open the answered call's RTP session; a callee with keys to press waits for the prompt."""
        if self._open_media is None:
            return
        req = dialog.invite
        dialog.media = self._open_media(req, self._local_host(req.source))
        treatment = dialog.route.treatment
        if treatment is not None and treatment.press:
            keys, after = treatment.press, treatment.press_after_s
            dialog.media.on_first_audio = lambda: dialog.timers.append(
                self._timers.schedule(after, lambda: self._press(dialog, keys)))

    def _press(self, dialog: Dialog, keys: str) -> None:
        if dialog.state is not State.CONFIRMED or dialog.media is None:
            return
        media = dialog.media
        for i, key in enumerate(keys):
            press = functools.partial(self._press_one, dialog, media, key)
            dialog.timers.append(self._timers.schedule(i * _KEY_GAP_S, press))
        log.info("callee %s presses %s call=%s", dialog.invite.number, keys, dialog.invite.call_id)

    def _press_one(self, dialog: Dialog, media: RtpSession, key: str) -> None:
        if dialog.state is State.CONFIRMED:
            media.press(key, self._schedule_media)

    def _schedule_media(self, delay: float, send: Callable[[], None]) -> object:
        return self._timers.schedule(delay, send)

    def _dialog_media_port(self, dialog: Dialog | None) -> int:
        return dialog.media.port if dialog is not None and dialog.media is not None else self._media_port

    def _stop_media(self, dialog: Dialog) -> dict[str, object]:
        """Close the call's RTP session; what the callee heard and pressed, for the call log."""
        media, dialog.media = dialog.media, None
        if media is None or self._close_media is None:
            return {}
        path = self._close_media(media)
        return {"heard_s": round(media.heard_s, 2), "pressed": media.pressed, "recording": path}

    def _on_refer(self, req: Request) -> None:
        """Blind transfer: 202 and a NOTIFY with sipfrag 200, or 403, as the plan says; else 405."""
        dialog = self._dialogs.get(req.call_id)
        if dialog is None or dialog.state is not State.CONFIRMED or dialog.to_tag != req.to_tag:
            self._reply(req, 481, "Call/Transaction Does Not Exist")
            return
        treatment = dialog.route.treatment
        answer = treatment.refer if treatment is not None else None
        target = req.header("refer-to") or ""
        if answer is None:
            self._on_unsupported(req)
            return
        if answer is ReferAnswer.REFUSE:
            self._log.update(dialog.record, transfer=f"refused {target}".strip())
            self._reply(req, 403, "Forbidden")
            return
        self._reply(req, 202, "Accepted")
        self._log.update(dialog.record, transfer=f"accepted {target}".strip())
        invite = dialog.invite
        data = invite.notify_sipfrag(local_tag=dialog.to_tag, via_host=self._local_host(invite.source),
                                     via_port=self._port, cseq=dialog.next_cseq(), sipfrag="SIP/2.0 200 OK")
        log.info("-> NOTIFY 200 (transfer) %s call=%s", invite.number, invite.call_id)
        self._send(data, invite.source)
        self._notifies[invite.call_id] = Retransmitter(self._timers, self._send, data, invite.source,
                                                       on_timeout=functools.partial(self._notify_unanswered,
                                                                                    invite.call_id))

    def _notify_unanswered(self, call_id: str) -> None:
        self._notifies.pop(call_id, None)
        log.warning("no response to NOTIFY call=%s", call_id)

    # --- ending --------------------------------------------------------------------------------

    def _hangup(self, dialog: Dialog) -> None:
        """The PBX ends an answered call: BYE to where the INVITE came from, repeated until answered."""
        if dialog.state not in (State.ANSWERED, State.CONFIRMED):
            return
        self._end(dialog, EndedBy.PBX)
        invite = dialog.invite
        data = invite.bye(local_tag=dialog.to_tag, via_host=self._local_host(invite.source),
                          via_port=self._port, cseq=dialog.next_cseq())
        log.info("-> BYE %s call=%s", invite.number, invite.call_id)
        self._send(data, invite.source)
        self._byes[invite.call_id] = Retransmitter(self._timers, self._send, data, invite.source,
                                                   on_timeout=lambda: self._bye_unanswered(invite.call_id))

    def _bye_unanswered(self, call_id: str) -> None:
        self._byes.pop(call_id, None)
        log.warning("no response to BYE call=%s", call_id)

    def _end(self, dialog: Dialog, by: EndedBy) -> None:
        dialog.state = State.ENDED
        for timer in dialog.timers:
            timer.cancel()
        self._log.update(dialog.record, ended_at=utc_now(), ended_by=by, **self._stop_media(dialog))
        # Keep the dialog long enough to answer retransmissions, then forget it.
        self._timers.schedule(TIMEOUT_S, lambda: self._forget(dialog))

    def _forget(self, dialog: Dialog) -> None:
        key = (dialog.invite.call_id, dialog.invite.cseq)
        if self._invites.get(key) is dialog:
            del self._invites[key]
        if self._dialogs.get(dialog.invite.call_id) is dialog:
            del self._dialogs[dialog.invite.call_id]


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

