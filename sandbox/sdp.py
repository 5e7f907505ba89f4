"""A minimal SDP answer (RFC 3264) so that real user agents accept the PBX's 200 OK.

The answer points the caller's RTP at the call's own socket (see
:mod:`sandbox.rtp`). What matters is that the answer is one a strict UA
(pjsua2, sipp) takes: one ``m=`` line per offered line in the same order, the
first audio stream accepted with exactly one codec the caller offered (PCMU,
else PCMA, else its first) plus telephone-event/8000 when offered (so the
callee can press keys, RFC 4733), every other stream refused with port 0.
Pure string work: the offer is parsed line by line, which is all SDP needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

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
    host: str | None = None  # the media-level c= address, when given


class RemoteAudio(NamedTuple):
    """Where the caller wants its audio, and the payload types the answer agreed on."""

    host: str
    port: int
    payload: int  # 0 PCMU or 8 PCMA (others are received but not decoded)
    event_payload: int | None  # telephone-event/8000, when offered


def remote_audio(offer: str | None) -> RemoteAudio | None:
    """The caller's audio destination and the types our answer picks; None when no audio was offered."""
    if not offer:
        return None
    session_host = next((line.split()[-1] for line in offer.splitlines() if line.startswith("c=")), None)
    for m in _parse_media(offer):
        payload = _choose_payload(m) if _usable(m) else None
        host = m.host or session_host
        if payload is not None and host and m.port.isdigit():
            event = _event_payload(m)
            return RemoteAudio(host, int(m.port), int(payload), None if event is None else int(event))
    return None


def _event_payload(m: _Media) -> str | None:
    return next((pt for pt in m.formats if m.rtpmaps.get(pt, "").lower() == "telephone-event/8000"), None)


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
        event = _event_payload(m)
        lines.append(f"m=audio {media_port} {m.proto} {payload}" + (f" {event}" if event else ""))
        name = m.rtpmaps.get(payload) or _STATIC_NAMES.get(payload)
        if name:
            lines.append(f"a=rtpmap:{payload} {name}")
        if event:
            lines += [f"a=rtpmap:{event} telephone-event/8000", f"a=fmtp:{event} 0-16"]
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
        elif line.startswith("c=") and media:
            media[-1].host = line.split()[-1]
        elif line.startswith("a=rtpmap:") and media:
            pt, _, name = line[len("a=rtpmap:"):].partition(" ")
            media[-1].rtpmaps[pt] = name.strip()
    return media
