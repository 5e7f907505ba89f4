"""The digest challenges pjsua answers by itself, recovered from pjsip's own log lines.

pjsua answers a 401/407 with credentials inside the stack and tells the
application nothing: ``Account.onRegState`` fires only for the REGISTER's
final response, and pjsua skips ``on_call_tsx_state`` for an INVITE
transaction it is about to retry with credentials (pjsua_call.c, ticket
#1452). For an operator, though, "REGISTER -> 401 -> 200" and "INVITE -> 407
-> 404" are the first thing to check on a trunk, so the agent reads them
from the one place pjsip does report them: its level-5 log line per
received response, e.g.::

    tsx0x55b4ab738f18  .Incoming Response msg 401/REGISTER/cseq=19516 (rdata0x...) in state Calling

Only that start-line summary is parsed. Message logging stays off, so no
SIP message, and no Authorization header, ever reaches Python; and the
summary names only the code, the method and the CSeq.

Why this is safe on this wheel: pjsua2 calls the log writer on the thread
that logged, and with ``mainThreadOnly`` it queues lines from any other
thread (the null audio device's clock thread) until the SIP thread's next
``libHandleEvents``; with ``threadCnt = 0`` pjsip itself logs only on the SIP
thread. So :class:`ResponseLog` is fed and read on the SIP thread alone and
needs no lock.

Attribution, without a Call-ID in the line: the REGISTER challenges belong
to the process's one account and are taken when its final result arrives;
an INVITE challenge is read by the call at the moment pjsua re-sends its
INVITE with credentials, which pjsua does synchronously while handling the
challenge, so the last INVITE response logged is that call's (the CSeq is
checked all the same). Pure: no pjsua2 here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHALLENGE_CODES = frozenset({401, 407})
# The transaction layer's line: one per response received, retransmissions
# included; those arrive in state Completed and are left out.
_INCOMING = re.compile(
    r"Incoming Response msg (?P<code>\d{3})/(?P<method>[A-Z]+)/cseq=(?P<cseq>\d+) \(rdata[^)]*\)"
    r" in state (?:Calling|Proceeding)\b"
)
# SipTxData.info of a request we send: "Request msg INVITE/cseq=30317 (tdta0x...)".
_REQUEST = re.compile(r"^Request msg (?P<method>[A-Z]+)/cseq=(?P<cseq>\d+)\b")
_MAX_PENDING = 16  # REGISTER responses kept between two results; pjsua retries auth only a few times


@dataclass(frozen=True, slots=True)
class SeenResponse:
    """One response as pjsip's transaction layer logged it."""

    code: int
    method: str
    cseq: int


def parse_incoming(line: str) -> SeenResponse | None:
    """The response a pjsip log line reports receiving, or None for any other line."""
    if "Incoming Response" not in line:  # the cheap test first: most lines are something else
        return None
    match = _INCOMING.search(line)
    if match is None:
        return None
    return SeenResponse(int(match["code"]), match["method"], int(match["cseq"]))


def request_cseq(info: str, method: str = "INVITE") -> int | None:
    """The CSeq number in a pjsip request summary, when it is a ``method`` request."""
    match = _REQUEST.match(info)
    if match is None or match["method"] != method:
        return None
    return int(match["cseq"])


class ResponseLog:
    """Responses seen in pjsip's log that the account and the calls have not claimed yet."""

    def __init__(self) -> None:
        self._register: list[int] = []
        self._last_invite: SeenResponse | None = None

    def feed(self, line: str) -> None:
        """One log line from pjsip (any line: the irrelevant ones are ignored)."""
        seen = parse_incoming(line)
        if seen is None or seen.code < 200:
            return
        if seen.method == "REGISTER":
            self._register.append(seen.code)
            del self._register[:-_MAX_PENDING]
        elif seen.method == "INVITE":
            self._last_invite = seen

    def take_register_challenges(self, final_code: int) -> tuple[int, ...]:
        """The 401/407s answered on the way to the REGISTER result ``final_code``; forgets them.

        The last response seen is the final one itself when it came from the
        registrar (a 401 pjsua could not answer is the result, not a
        challenge); a local result (408 timeout) leaves every seen one a
        challenge.
        """
        codes, self._register = self._register, []
        if codes and codes[-1] == final_code:
            codes.pop()
        return tuple(code for code in codes if code in CHALLENGE_CODES)

    def invite_challenge(self, previous_cseq: int) -> int | None:
        """The 401/407 that the INVITE with ``previous_cseq`` got, if it is the latest INVITE response.

        Called when pjsua re-sends an INVITE; claims the response so it is
        counted once.
        """
        seen = self._last_invite
        if seen is None or seen.cseq != previous_cseq or seen.code not in CHALLENGE_CODES:
            return None
        self._last_invite = None
        return seen.code
