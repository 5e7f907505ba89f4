"""The only module that touches pjsua2 objects: endpoint setup and callbacks.

Everything here runs on the agent's SIP thread. The rules that keep this
wheel alive (measured, see DESIGN.md):

* one Endpoint per process, ``threadCnt = 0`` and ``mainThreadOnly``, so no
  pjsua thread ever calls into Python and only the SIP thread calls pjsua;
* media shares the SIP ioqueue, so the media endpoint gets no thread either;
* callbacks only record facts (into a :class:`CallTrace` or a mailbox list)
  and never raise: an exception escaping a SWIG director aborts the process;
* no reference cycles through pjsua objects, so a Call or Account is freed
  by refcount on the SIP thread, never by the cyclic GC on some other thread.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pjsua2 as pj

from worker.sip.config import SipAccountConfig
from worker.sip.trace import CallTrace

log = logging.getLogger("worker.sip")

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


class PjAccount(pj.Account):  # type: ignore[misc]  # pjsua2 ships no type information
    """Account whose registration reports land in a plain list the SIP loop drains."""

    def __init__(self, mailbox: list[RegEvent]) -> None:
        super().__init__()
        self._mailbox = mailbox

    def onRegState(self, prm: Any) -> None:
        try:
            active = bool(self.getInfo().regIsActive)
            event = RegEvent(int(prm.code), str(prm.reason), int(prm.expiration), active, utcnow())
            self._mailbox.append(event)
        except Exception:  # an exception escaping a director callback aborts the process
            log.exception("onRegState failed")


def _invite_response(event: Any) -> tuple[int, str] | None:
    """The response to our INVITE that this event delivered, if any.

    pjsua stops call callbacks once a call is DISCONNECTED, so the final
    non-2xx response is only seen here, in the DISCONNECTED state event.
    """
    if event.type != pj.PJSIP_EVENT_TSX_STATE:
        return None
    tsx_event = event.body.tsxState
    tsx = tsx_event.tsx
    if (
        tsx_event.type == pj.PJSIP_EVENT_RX_MSG
        and tsx.role == pj.PJSIP_ROLE_UAC
        and tsx.method == "INVITE"
        and tsx.statusCode >= 100
    ):
        return int(tsx.statusCode), str(tsx.statusText)
    return None


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

    def __init__(self, account: PjAccount, trace: CallTrace) -> None:
        super().__init__(account)
        self.trace = trace

    def onCallTsxState(self, prm: Any) -> None:
        try:
            response = _invite_response(prm.e)
            if response is not None:
                self.trace.on_response(*response, utcnow())
        except Exception:  # an exception escaping a director callback aborts the process
            log.exception("onCallTsxState failed")

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.trace.on_confirmed(utcnow())
            elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                now = utcnow()
                response = _invite_response(prm.e)
                if response is not None:
                    self.trace.on_response(*response, now)
                self.trace.on_disconnected(int(info.lastStatusCode), str(info.lastReason), now, _error_hint(prm.e))
        except Exception:
            log.exception("onCallState failed")


def endpoint_config(max_calls: int, log_level: int) -> Any:
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = max(1, min(max_calls, MAX_CALLS_CAP))
    cfg.uaConfig.userAgent = "sip-dialer"
    cfg.medConfig.threadCnt = 0
    # Errors (and warnings at 2) only; message logging off, so no SIP message,
    # and no Authorization header, is ever printed by pjsua.
    cfg.logConfig.level = log_level
    cfg.logConfig.consoleLevel = log_level
    cfg.logConfig.msgLogging = 0
    return cfg


def transport_config(account: SipAccountConfig) -> Any:
    tcfg = pj.TransportConfig()
    tcfg.port = account.local_port
    tcfg.boundAddress = account.bind_address
    if account.transport == "tls":
        tcfg.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
        if account.tls_ca_file:
            tcfg.tlsConfig.CaListFile = account.tls_ca_file
            tcfg.tlsConfig.verifyServer = True
    return tcfg


def _quiet_pjlib(level: int) -> None:
    """Lower pjlib's log level before libCreate, which otherwise logs its start-up at level 5."""
    try:
        ctypes.CDLL(pj._pjsua2.__file__).pj_log_set_level(ctypes.c_int(level))
    except (OSError, AttributeError):
        log.debug("pj_log_set_level unavailable; pjlib start-up lines may appear on stderr")


def open_endpoint(account: SipAccountConfig, *, max_calls: int, log_level: int) -> tuple[Any, str]:
    """Create, configure and start the process's Endpoint; returns it and its SIP address."""
    _quiet_pjlib(log_level)
    ep = pj.Endpoint()
    ep.libCreate()
    try:
        ep.libInit(endpoint_config(max_calls, log_level))
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
    acfg.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", account.realm or "*", account.username, 0, account.password)
    )
    for proxy in account.proxy_uris():
        acfg.sipConfig.proxies.append(proxy)
    acfg.mediaConfig.transportConfig.port = 0
    acfg.mediaConfig.transportConfig.boundAddress = account.bind_address
    acfg.natConfig.iceEnabled = False
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
