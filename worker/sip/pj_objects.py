"""The only module that touches pjsua2 objects: endpoint setup and callbacks.

Everything here runs on the agent's SIP thread. The rules that keep this
wheel alive (measured, see DESIGN.md):

* one Endpoint per process, ``threadCnt = 0`` and ``mainThreadOnly``, so no
  pjsua thread ever calls into Python and only the SIP thread calls pjsua;
* media shares the SIP ioqueue, so the media endpoint gets no thread either;
* callbacks only record facts (into a :class:`CallTrace` or a mailbox list)
  and never raise: an exception escaping a SWIG director aborts the process;
* no reference cycles through pjsua objects, so a Call or Account is freed
  by refcount on the SIP thread, never by the cyclic GC on some other thread;
* pjsua's log goes to a :class:`PjLogTap` at level 5 with message logging
  off: it reads the per-response summaries for the digest challenges pjsua
  answers itself (:mod:`worker.sip.responses` says why that is the safe
  hook) and forwards lines at or below the agent's ``log_level`` to Python
  logging, so they pass the secret-redacting filter.
"""

from __future__ import annotations

import ctypes
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pjsua2 as pj

from worker.sip.config import SipAccountConfig
from worker.sip.media.events import CallEvent, DtmfEvent, MediaChanged, TransferStatus
from worker.sip.media.sdp import dtmf_on_101
from worker.sip.responses import ResponseLog, request_cseq
from worker.sip.tls_check import TlsVerifyLog, tls_ca_file
from worker.sip.trace import CallTrace

log = logging.getLogger("worker.sip")
pj_log = logging.getLogger("worker.sip.pjsua")

# pjsip logs each received response's summary at level 5; nothing above it is needed.
TAP_LEVEL = 5
_PJ_TO_PY_LEVEL = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}

PJ_ETOOMANY = 70010  # pj/errno.h: PJ_ERRNO_START_STATUS + 10
MAX_CALLS_CAP = 4  # compiled into the wheel (PJSUA_MAX_CALLS); more is clamped

_TRANSPORT_TYPES = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RegEvent:
    """One onRegState report, copied out of pjsua's structures."""

    code: int
    reason: str
    expires_s: int
    active: bool
    at: datetime
    challenges: tuple[int, ...] = ()


class PjLogTap(pj.LogWriter):  # type: ignore[misc]  # pjsua2 ships no type information
    """pjsua's log writer: feeds every line to the ResponseLog, forwards the important ones.

    Runs on the SIP thread only (see :mod:`worker.sip.responses`). The
    Endpoint deletes its writer in libDestroy, so :func:`open_endpoint` hands
    this object over with ``__disown__`` and keeps no reference of its own.
    """

    def __init__(self, responses: ResponseLog | None, forward_level: int) -> None:
        super().__init__()
        self._responses = responses
        self._forward_level = forward_level

    def write(self, entry: Any) -> None:
        # About a hundred lines per call pass here: keep the common path to two lookups.
        try:
            line: str = entry.msg
            if self._responses is not None:
                self._responses.feed(line)
            if self._forward_level > 0:
                level = int(entry.level)
                if level <= self._forward_level:
                    pj_log.log(_PJ_TO_PY_LEVEL.get(level, logging.DEBUG), "%s", line.rstrip())
        except Exception:  # an exception escaping a director callback aborts the process
            log.debug("pjsua log line dropped", exc_info=True)


class PjEndpoint(pj.Endpoint):  # type: ignore[misc]  # pjsua2 ships no type information
    """The Endpoint, keeping what OpenSSL said about a server certificate it refused.

    ``onTransportState`` runs inside libHandleEvents on the SIP thread
    (threadCnt 0); it records and never raises.
    """

    def __init__(self, tls_log: TlsVerifyLog) -> None:
        super().__init__()
        self._tls_log = tls_log

    def onTransportState(self, prm: Any) -> None:
        try:
            info = prm.tlsInfo
            if info is None or info.isEmpty() or int(info.verifyStatus) == 0:
                return
            reasons = tuple(str(msg) for msg in info.verifyMsgs) or (f"verify status {int(info.verifyStatus)}",)
            self._tls_log.add(str(info.remoteAddr), reasons)
        except Exception:  # an exception escaping a director callback aborts the process
            log.debug("onTransportState failed", exc_info=True)


class PjAccount(pj.Account):  # type: ignore[misc]  # pjsua2 ships no type information
    """Account whose registration reports land in a plain list the SIP loop drains."""

    def __init__(self, mailbox: list[RegEvent], responses: ResponseLog) -> None:
        super().__init__()
        self._mailbox = mailbox
        self._responses = responses

    def onRegState(self, prm: Any) -> None:
        try:
            active = bool(self.getInfo().regIsActive)
            code = int(prm.code)
            challenges = self._responses.take_register_challenges(code)
            event = RegEvent(code, str(prm.reason), int(prm.expiration), active, utcnow(), challenges)
            self._mailbox.append(event)
        except Exception:  # an exception escaping a director callback aborts the process
            log.exception("onRegState failed")


def _our_invite_tsx(event: Any, event_type: int) -> Any | None:
    """The transaction event if ``event`` is ``event_type`` on an INVITE we sent (UAC), else None."""
    if event.type != pj.PJSIP_EVENT_TSX_STATE:
        return None
    tsx_event = event.body.tsxState
    tsx = tsx_event.tsx
    if tsx_event.type == event_type and tsx.role == pj.PJSIP_ROLE_UAC and tsx.method == "INVITE":
        return tsx_event
    return None


def _invite_response(event: Any) -> tuple[int, str] | None:
    """The response to our INVITE that this event delivered, if any.

    pjsua stops call callbacks once a call is DISCONNECTED, so the final
    non-2xx response is only seen here, in the DISCONNECTED state event.
    """
    tsx_event = _our_invite_tsx(event, pj.PJSIP_EVENT_RX_MSG)
    if tsx_event is None or tsx_event.tsx.statusCode < 100:
        return None
    return int(tsx_event.tsx.statusCode), str(tsx_event.tsx.statusText)


def _invite_sent(event: Any) -> int | None:
    """The CSeq of the INVITE this event says we just sent (a new UAC transaction), if any."""
    tsx_event = _our_invite_tsx(event, pj.PJSIP_EVENT_TX_MSG)
    if tsx_event is None or tsx_event.tsx.state != pj.PJSIP_TSX_STATE_CALLING:
        return None
    return request_cseq(str(tsx_event.src.tdata.info))


def _error_hint(event: Any) -> str | None:
    """'timeout' / 'transport error' when the event says no response came."""
    if event.type != pj.PJSIP_EVENT_TSX_STATE:
        return None
    kind = event.body.tsxState.type
    if kind == pj.PJSIP_EVENT_TIMER:
        return "timeout: no response from the peer"
    if kind == pj.PJSIP_EVENT_TRANSPORT_ERROR:
        return "transport error"
    return None


class PjCall(pj.Call):  # type: ignore[misc]  # pjsua2 ships no type information
    """Outgoing call that writes what happens into its :class:`CallTrace`."""

    def __init__(self, account: PjAccount, trace: CallTrace, responses: ResponseLog) -> None:
        super().__init__(account)
        self.trace = trace
        self._responses = responses
        self.confirmed = False
        self.audio: Any | None = None  # the call's AudioMedia in the conference bridge, while active
        self.events: list[CallEvent] = []  # media facts for the SIP loop (see worker.sip.media)

    def onCallTsxState(self, prm: Any) -> None:
        try:
            sent = _invite_sent(prm.e)
            if sent is not None:
                previous = self.trace.invite_cseq
                challenge = None if previous is None else self._responses.invite_challenge(previous)
                self.trace.on_invite_sent(sent, challenge)
            response = _invite_response(prm.e)
            if response is not None:
                self.trace.on_response(*response, utcnow())
        except Exception:  # an exception escaping a director callback aborts the process
            log.exception("onCallTsxState failed")

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.confirmed = True
                self.trace.on_confirmed(utcnow())
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                now = utcnow()
                response = _invite_response(prm.e)
                if response is not None:
                    self.trace.on_response(*response, now)
                self.trace.on_disconnected(int(info.lastStatusCode), str(info.lastReason), now, _error_hint(prm.e))
        except Exception:
            log.exception("onCallState failed")

    # Media callbacks (worker.sip.media): each records one fact and returns.
    def onCallMediaState(self, prm: Any) -> None:
        try:
            audio = None
            info = self.getInfo()  # keep it alive: its media vector points into it
            for index, media in enumerate(info.media):
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    audio = self.getAudioMedia(index)
                    break
            self.audio = audio
            self.events.append(MediaChanged(audio is not None, time.monotonic()))
        except Exception:
            log.exception("onCallMediaState failed")

    def onCallSdpCreated(self, prm: Any) -> None:
        """Our offer puts telephone-event on payload type 101 (see worker.sip.media.sdp)."""
        try:
            if not prm.remSdp.wholeSdp:  # we are the offerer; an answer must echo the offer's types
                prm.sdp.wholeSdp = dtmf_on_101(str(prm.sdp.wholeSdp))
        except Exception:
            log.exception("onCallSdpCreated failed")

    def onDtmfDigit(self, prm: Any) -> None:
        try:
            self.events.append(DtmfEvent(str(prm.digit), _dtmf_method(prm.method), True, False, 0, time.monotonic()))
        except Exception:
            log.exception("onDtmfDigit failed")

    def onDtmfEvent(self, prm: Any) -> None:
        try:
            end = bool(int(prm.flags) & _DTMF_IS_END)
            self.events.append(DtmfEvent(
                str(prm.digit), _dtmf_method(prm.method), False, end, int(prm.duration), time.monotonic()
            ))
        except Exception:
            log.exception("onDtmfEvent failed")

    def onCallTransferStatus(self, prm: Any) -> None:
        try:
            final = bool(prm.finalNotify)
            self.events.append(TransferStatus(int(prm.statusCode), str(prm.reason), final, time.monotonic()))
            if final:
                prm.cont = False
        except Exception:
            log.exception("onCallTransferStatus failed")


_DTMF_IS_END = 2  # PJMEDIA_STREAM_DTMF_IS_END, not exported by the wheel


def _dtmf_method(method: int) -> Literal["rfc2833", "info"]:
    return "info" if method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"


def endpoint_config(max_calls: int, log_level: int, writer: PjLogTap, *, tap: bool) -> Any:
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = max(1, min(max_calls, MAX_CALLS_CAP))
    cfg.uaConfig.userAgent = "sip-dialer"
    cfg.medConfig.threadCnt = 0
    # The null sound device's clock drives the conference bridge (prompts, recorders,
    # bridged calls); pjsua would close it after a second with nothing on slot 0.
    cfg.medConfig.sndAutoCloseTime = -1
    # Level 5 for the response summaries the tap reads; it forwards only lines
    # at or below log_level (errors, and warnings at 2). Message logging off,
    # so no SIP message, and no Authorization header, is ever logged by pjsua.
    level = max(log_level, TAP_LEVEL) if tap else log_level
    cfg.logConfig.level = level
    cfg.logConfig.consoleLevel = level  # pjsua hands the writer only lines up to this level
    cfg.logConfig.msgLogging = 0
    cfg.logConfig.decor = pj.PJ_LOG_HAS_SENDER
    cfg.logConfig.writer = writer
    return cfg


def transport_config(account: SipAccountConfig) -> Any:
    tcfg = pj.TransportConfig()
    tcfg.port = account.local_port
    tcfg.boundAddress = account.bind_address
    if account.transport == "tls":
        tls_client_config(account, tcfg.tlsConfig)
    return tcfg


def tls_client_config(account: SipAccountConfig, tls: Any) -> None:
    """TLS 1.2 or newer; the server's certificate checked against the CA file and the host name.

    pjsip's TLS transport verifies the chain against ``CaListFile`` and the
    certificate's names against the host it connected to, and with
    ``verifyServer`` it closes the connection when either fails (which
    :mod:`worker.sip.tls_check` then reports as a configuration error).
    """
    tls.method = pj.PJSIP_SSL_UNSPECIFIED_METHOD
    tls.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
    ca_file = tls_ca_file(account)
    if ca_file:
        tls.CaListFile = ca_file
    tls.verifyServer = account.tls_verify
    if not account.tls_verify:
        log.warning(
            "trunk %s: TLS certificate verification is OFF (tls_verify = false): anyone on the path to %s "
            "can impersonate the carrier; set tls_ca_file instead", account.name, account.first_hop,
        )


def _quiet_pjlib(level: int) -> None:
    """Lower pjlib's log level before libCreate, which otherwise logs its start-up at level 5."""
    try:
        ctypes.CDLL(pj._pjsua2.__file__).pj_log_set_level(ctypes.c_int(level))
    except (OSError, AttributeError):
        log.debug("pj_log_set_level unavailable; pjlib start-up lines may appear on stderr")


def open_endpoint(
    account: SipAccountConfig,
    *,
    max_calls: int,
    log_level: int,
    responses: ResponseLog | None,
    tls_log: TlsVerifyLog | None = None,
) -> tuple[Any, str]:
    """Create, configure and start the process's Endpoint; returns it and its SIP address.

    Log lines reach ``responses`` from libInit until libDestroy; with None,
    pjsua logs only up to ``log_level`` and no challenge is observed.
    """
    _quiet_pjlib(log_level)
    ep = PjEndpoint(tls_log or TlsVerifyLog())
    ep.libCreate()
    try:
        writer = PjLogTap(responses, log_level)
        writer.__disown__()  # libDestroy deletes the writer; Python must not delete it again
        ep.libInit(endpoint_config(max_calls, log_level, writer, tap=responses is not None))
        tid = ep.transportCreate(_TRANSPORT_TYPES[account.transport], transport_config(account))
        ep.audDevManager().setNullDev()
        ep.libStart()
        local = str(ep.transportGetInfo(tid).localName)
    except BaseException:
        ep.libDestroy()
        raise
    return ep, local


def account_config(account: SipAccountConfig) -> Any:
    acfg = pj.AccountConfig()
    acfg.idUri = account.account_uri()
    if account.register:
        acfg.regConfig.registrarUri = account.registrar_uri()
        acfg.regConfig.registerOnAdd = True
        acfg.regConfig.timeoutSec = account.reg_expires_s
        # pjsua's own retry is a fixed interval; the agent backs off instead.
        acfg.regConfig.retryIntervalSec = 0
        acfg.regConfig.firstRetryIntervalSec = 0
        acfg.regConfig.delayBeforeRefreshSec = 5 if account.reg_expires_s > 10 else 1
        acfg.regConfig.unregWaitMsec = 1000
    if account.password:  # an IP-authenticated trunk has none; pjsua then answers no challenge
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", account.realm or "*", account.username, 0, account.password)
        )
    for proxy in account.proxy_uris():
        acfg.sipConfig.proxies.append(proxy)
    # RFC 5626 outbound: pjsua would derive +sip.instance from the host name, the same in every
    # process on a host, so a registrar keyed on it keeps one binding for all of them.
    acfg.natConfig.sipOutboundUse = 1 if account.sip_outbound else 0
    if account.sip_outbound:
        acfg.natConfig.sipOutboundInstanceId = f"<urn:uuid:{uuid.uuid4()}>"
    acfg.mediaConfig.transportConfig.port = 0
    acfg.mediaConfig.transportConfig.boundAddress = account.bind_address
    acfg.natConfig.iceEnabled = False
    # No re-INVITE to settle on one codec when the answer lists several: it replaced the
    # call's bridge port mid-prompt and, crossing an early BYE, held the call ~32 s.
    acfg.mediaConfig.lockCodecEnabled = False
    return acfg


def new_call_param() -> Any:
    return pj.CallOpParam(True)


def hangup(call: PjCall) -> None:
    """Hang up (CANCEL before an answer, BYE after); a call already ending is fine."""
    try:
        call.hangup(pj.CallOpParam())
    except pj.Error as exc:
        log.debug("hangup of %s ignored: %s", call.trace.call_id, exc.reason)


def call_id_of(call: PjCall) -> str:
    try:
        return str(call.getInfo().callIdString)
    except pj.Error:
        return ""


def verify_uri(ep: Any, uri: str) -> bool:
    return bool(ep.utilVerifySipUri(uri) == 0)


PjError = pj.Error
DESTROY_NO_RX_MSG = pj.PJSUA_DESTROY_NO_RX_MSG
