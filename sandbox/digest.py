"""HTTP digest authentication as SIP uses it (RFC 2617 / RFC 3261 section 22), MD5 only.

The hash arithmetic is sippy's (``DigestCalcHA1`` / ``DigestCalcResponse``);
what is ours is the policy around it: which algorithms and qop values a
carrier-like sandbox accepts, how a challenge is worded, and a constant-time
comparison. sippy's own ``SipAuthorization.verify`` is not used because it
insists on nonces minted by its AES ``HashOracle`` with a 32 s lifetime; the
sandbox keeps plain random nonces (see ``sandbox.auth``) so a test can reason
about them.

Everything here is pure. Nothing returns or formats a password.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sippy.SipAuthorization import DigestCalcHA1, DigestCalcResponse

ALGORITHM = "MD5"


@dataclass(frozen=True)
class DigestAnswer:
    """The fields of an Authorization / Proxy-Authorization header that take part in the check."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None


def challenge(realm: str, nonce: str, *, qop: bool, stale: bool = False) -> str:
    """The value of a WWW-Authenticate / Proxy-Authenticate header."""
    value = f'Digest realm="{realm}", nonce="{nonce}", algorithm={ALGORITHM}'
    if qop:
        value += ', qop="auth"'
    if stale:
        # RFC 2617 3.2.1: the credentials were fine, only the nonce was unknown; retry silently.
        value += ", stale=true"
    return value


def is_acceptable(answer: DigestAnswer) -> bool:
    """True when the answer uses a scheme we can check: MD5, and no qop or qop=auth with nc/cnonce."""
    if answer.algorithm is not None and answer.algorithm.upper() != ALGORITHM:
        return False
    if answer.qop is None:
        return True
    return answer.qop == "auth" and bool(answer.nc) and bool(answer.cnonce)


def expected_response(answer: DigestAnswer, password: str, method: str) -> str:
    """The ``response`` a client knowing ``password`` would have computed for this answer."""
    ha1 = DigestCalcHA1(ALGORITHM, answer.username, answer.realm, password, answer.nonce, answer.cnonce)
    qop = answer.qop if answer.qop else None
    result: str = DigestCalcResponse(ALGORITHM, ha1, answer.nonce, answer.nc, answer.cnonce, qop,
                                     method, answer.uri, None)
    return result


def verify(answer: DigestAnswer, password: str, method: str) -> bool:
    """True when ``answer`` proves knowledge of ``password`` for ``method`` (constant-time compare)."""
    if not is_acceptable(answer):
        return False
    expected = expected_response(answer, password, method)
    return hmac.compare_digest(expected.encode(), answer.response.lower().encode())
