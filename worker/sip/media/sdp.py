"""Offer telephone-event on payload type 101, the type most gateways send whatever was offered.

pjsua 2.15 offers ``telephone-event/8000`` on a dynamic type of its own (121,
or 120 with only G.711) and its stream drops RFC 2833 packets of any other
type ("Bad RTP pt 101"). Many gateways and PBXs send digits on 101 no matter
what the offer said. So our offer is rewritten (in ``onCallSdpCreated``,
before it is sent) to put the 8 kHz telephone-event on 101; pjsua then
negotiates and receives it on 101. A codec already on 101 swaps numbers with
it, so every payload type stays unique. Pure text in, text out.
"""

from __future__ import annotations

import re

DTMF_PT = 101
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) telephone-event/8000\s*$", re.I)
_MLINE = re.compile(r"^(m=audio \S+ \S+)((?: \d+)+)\s*$")
_PT_ATTR = re.compile(r"^(a=(?:rtpmap|fmtp|rtcp-fb):)(\d+)(\b.*)$")


def _swap(pt: int, a: int, b: int) -> int:
    return b if pt == a else a if pt == b else pt


def dtmf_on_101(sdp: str) -> str:
    """``sdp`` with the audio section's telephone-event/8000 moved to payload type 101.

    Returns the text unchanged when there is no telephone-event/8000 or it is
    already on 101. Line endings are kept as found (SDP uses CRLF).
    """
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    current = next((int(m.group(1)) for line in lines if (m := _RTPMAP.match(line))), None)
    if current is None or current == DTMF_PT:
        return sdp
    out: list[str] = []
    for line in lines:
        mline = _MLINE.match(line)
        if mline:
            pts = [str(_swap(int(pt), current, DTMF_PT)) for pt in mline.group(2).split()]
            out.append(f"{mline.group(1)} {' '.join(pts)}")
            continue
        attr = _PT_ATTR.match(line)
        if attr:
            out.append(f"{attr.group(1)}{_swap(int(attr.group(2)), current, DTMF_PT)}{attr.group(3)}")
            continue
        out.append(line)
    return newline.join(out)
