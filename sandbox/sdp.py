"""A minimal SDP answer (RFC 3264) so that real user agents accept the PBX's 200 OK.

The sandbox plays no audio: it points the caller's RTP at a socket it drains and
discards. What matters is that the answer is one a strict UA (pjsua2, sipp)
takes: one ``m=`` line per offered line in the same order, the first audio
stream accepted with exactly one codec the caller offered (PCMU, else PCMA,
else its first), every other stream refused with port 0. Pure string work: the
offer is parsed line by line, which is all SDP needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_PREFERRED = ("0", "8")  # PCMU, PCMA: static payload types every UA knows
_STATIC_NAMES = {"0": "PCMU/8000", "8": "PCMA/8000", "3": "GSM/8000", "9": "G722/8000", "18": "G729/8000"}
_RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")


@dataclass
class _Media:
    kind: str
    port: str
    proto: str
    formats: list[str]
    rtpmaps: dict[str, str] = field(default_factory=dict)


def answer_sdp(offer: str | None, address: str, media_port: int, session_id: int) -> str:
    """The SDP answer to ``offer`` (or an offer of our own when the INVITE had none)."""
    media = _parse_media(offer) if offer else []
    lines = _session_lines(address, session_id)
    if not media:
        lines += [f"m=audio {media_port} RTP/AVP 0 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
                  "a=sendrecv"]
        return "\r\n".join(lines) + "\r\n"
    accepted = False
    for m in media:
        payload = _choose_payload(m) if not accepted and _usable(m) else None
        if payload is None:
            lines.append(f"m={m.kind} 0 {m.proto} {m.formats[0] if m.formats else '0'}")
            continue
        accepted = True
        lines.append(f"m=audio {media_port} {m.proto} {payload}")
        name = m.rtpmaps.get(payload) or _STATIC_NAMES.get(payload)
        if name:
            lines.append(f"a=rtpmap:{payload} {name}")
        lines.append("a=sendrecv")
    return "\r\n".join(lines) + "\r\n"


def _session_lines(address: str, session_id: int) -> list[str]:
    family = "IP6" if ":" in address else "IP4"
    return [
        "v=0",
        f"o=sandbox {session_id} {session_id} IN {family} {address}",
        "s=sandbox-pbx",
        f"c=IN {family} {address}",
        "t=0 0",
    ]


def _usable(m: _Media) -> bool:
    return m.kind == "audio" and m.port != "0" and m.proto in _RTP_PROTOS and bool(m.formats)


def _choose_payload(m: _Media) -> str | None:
    for preferred in _PREFERRED:
        if preferred in m.formats:
            return preferred
    for fmt in m.formats:
        name = m.rtpmaps.get(fmt, _STATIC_NAMES.get(fmt, ""))
        if name and not name.lower().startswith("telephone-event"):
            return fmt
    return None


def _parse_media(offer: str) -> list[_Media]:
    media: list[_Media] = []
    for raw in offer.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) >= 3:
                media.append(_Media(parts[0], parts[1].split("/")[0], parts[2], parts[3:]))
            else:
                media.append(_Media("unknown", "0", "RTP/AVP", []))
        elif line.startswith("a=rtpmap:") and media:
            pt, _, name = line[len("a=rtpmap:"):].partition(" ")
            media[-1].rtpmaps[pt] = name.strip()
    return media
