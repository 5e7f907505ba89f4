"""The pjsua2 SIP agent: the rest of the worker places calls through this, never through pjsua2.

One :class:`SipAgent` per worker process, created after fork::

    agent = SipAgent(SipAccountConfig(registrar="127.0.0.1:5060", username="1001",
                                      password="not-a-real-secret"))
    reg = agent.start()                     # RegistrationResult | None
    if reg is not None and reg.auth_rejected: ...   # trunk alarm, no retry
    reg.challenges                          # (401,): what pjsua answered with credentials
    result = agent.call(agent.uri_for("+8613900001111"), ring_timeout_s=45, hold_s=0)
    result.status, result.reason, result.call_id, result.rang, result.answered
    result.challenges                       # (407,) for a trunk that challenges INVITEs
    agent.stop(grace_s=10)

``call`` blocks and is safe from several threads; ``place_call`` returns a
Future. Refusals are exceptions from :mod:`shared.errors`: CapacityExceeded
(AgentStopped) when no INVITE was sent, InvalidNumber for a URI that cannot be
dialled, TransientSipError (CallTimedOut) when pjsua refused or the wait ran
out. Everything that reached the wire comes back as a :class:`CallResult`.

Modules: ``config`` (settings and result dataclasses, pure), ``trace`` (call
events -> CallResult, pure), ``responses`` (the 401/407s pjsua answers
itself, read from its log lines, pure), ``pacing`` (even call-start pacer,
REGISTER backoff, pure), ``tls_check`` (a refused TLS certificate as a
configuration error, pure), ``pj_objects`` (all pjsua2 code), ``commands``
(what threads hand the SIP thread), ``runtime`` (the SIP thread), ``agent``
(the facade), ``errors``.
"""

from worker.sip.agent import SipAgent
from worker.sip.config import CallResult, RegistrationResult, SipAccountConfig, Transport
from worker.sip.errors import AgentStopped, CallTimedOut

__all__ = [
    "AgentStopped",
    "CallResult",
    "CallTimedOut",
    "RegistrationResult",
    "SipAccountConfig",
    "SipAgent",
    "Transport",
]
