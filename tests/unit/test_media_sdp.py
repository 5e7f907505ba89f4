"""The SDP offer rewrite that puts telephone-event/8000 on payload type 101 (worker.sip.media.sdp)."""

from __future__ import annotations

from worker.sip.media.sdp import dtmf_on_101

PJSUA_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=pjmedia\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 120\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:120 telephone-event/8000\r\na=fmtp:120 0-16\r\na=sendrecv\r\n"
)


def test_pjsua_offer_moves_to_101_keeping_crlf() -> None:
    """pjsua's 120 becomes 101 in the m= line, rtpmap and fmtp; nothing else changes."""
    out = dtmf_on_101(PJSUA_OFFER)
    assert out == PJSUA_OFFER.replace("120", "101")
    assert out.count("\r\n") == PJSUA_OFFER.count("\r\n")


def test_codec_already_on_101_swaps_numbers() -> None:
    """A codec on 101 takes telephone-event's old number, so payload types stay unique."""
    sdp = ("m=audio 4000 RTP/AVP 101 0 121\na=rtpmap:101 opus/48000/2\na=fmtp:101 useinbandfec=1\n"
           "a=rtpmap:121 telephone-event/8000\na=fmtp:121 0-16\n")
    assert dtmf_on_101(sdp) == (
        "m=audio 4000 RTP/AVP 121 0 101\na=rtpmap:121 opus/48000/2\na=fmtp:121 useinbandfec=1\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n"
    )


def test_offer_without_telephone_event_or_already_101_is_unchanged() -> None:
    """Nothing to move: the text comes back as it was."""
    plain = "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    assert dtmf_on_101(plain) == plain
    on_101 = PJSUA_OFFER.replace("120", "101")
    assert dtmf_on_101(on_101) == on_101


def test_wideband_telephone_event_is_left_alone() -> None:
    """Only the 8 kHz telephone-event moves; a 16 kHz one keeps its number."""
    sdp = ("m=audio 4000 RTP/AVP 9 120 121\na=rtpmap:120 telephone-event/16000\n"
           "a=rtpmap:121 telephone-event/8000\n")
    assert dtmf_on_101(sdp) == ("m=audio 4000 RTP/AVP 9 120 101\na=rtpmap:120 telephone-event/16000\n"
                                "a=rtpmap:101 telephone-event/8000\n")
