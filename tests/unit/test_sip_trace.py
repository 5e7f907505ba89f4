"""How call events fold into a CallResult, and what the account config lets through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ConfigError, InvalidNumber
from worker.sip.config import SipAccountConfig
from worker.sip.trace import CallTrace

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
URI = "sip:+8613900001111@127.0.0.1:5060"
FAKE_SECRET = "not-a-real-secret"


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def test_answered_call_we_hang_up() -> None:
    """100, 180, 200 then our BYE: answered, local hang-up, timings from the events."""
    trace = CallTrace(URI, T0)
    trace.on_response(100, "Trying", at(10))
    trace.on_response(180, "Ringing", at(300))
    trace.on_response(200, "OK", at(2000))
    trace.on_confirmed(at(2001))
    trace.on_local_hangup()
    trace.on_disconnected(200, "Normal call clearing", at(2500))
    r = trace.result()
    assert (r.status, r.reason, r.answered, r.rang, r.hangup_by, r.error) == (200, "OK", True, True, "local", None)
    assert r.first_provisional_at == at(10)
    assert r.post_dial_delay_s == pytest.approx(0.3)
    assert r.setup_s == pytest.approx(2.0)
    assert r.talk_s == pytest.approx(0.5)


def test_remote_bye_is_remote() -> None:
    """An answered call that ends without our hang-up was ended by the far end."""
    trace = CallTrace(URI, T0)
    trace.on_response(200, "OK", at(100))
    trace.on_disconnected(200, "Normal call clearing", at(900))
    r = trace.result()
    assert (r.answered, r.hangup_by) == (True, "remote")
    assert r.talk_s == pytest.approx(0.8)


def test_rejection_is_the_peers_final_response() -> None:
    """A 404 before any ringing: status from the peer, no error, ended by the remote side."""
    trace = CallTrace(URI, T0)
    trace.on_response(404, "Not Found", at(50))
    trace.on_disconnected(404, "Not Found", at(50))
    r = trace.result()
    assert (r.status, r.reason, r.rang, r.answered, r.hangup_by, r.error) == (
        404, "Not Found", False, False, "remote", None
    )
    assert r.post_dial_delay_s is None and r.talk_s == 0.0


def test_ring_timeout_cancel_is_local_and_not_an_error() -> None:
    """Our CANCEL at the ring timeout: pjsua's own 487, ring_timeout_fired, hung up locally."""
    trace = CallTrace(URI, T0)
    trace.on_response(180, "Ringing", at(100))
    trace.on_local_hangup(ring_timeout=True)
    trace.on_disconnected(487, "Request Terminated", at(45_000))
    r = trace.result()
    assert (r.status, r.ring_timeout_fired, r.hangup_by, r.error, r.rang) == (487, True, "local", None, True)


def test_redirect_is_the_peers_final_answer() -> None:
    """A 302 is not followed; pjsua then ends the call with its own 487, but the 302 is what we report."""
    trace = CallTrace(URI, T0)
    trace.on_response(100, "Trying", at(5))
    trace.on_response(302, "Moved Temporarily", at(10))
    trace.on_disconnected(487, "Request Terminated", at(11))
    r = trace.result()
    assert (r.status, r.reason, r.hangup_by, r.error, r.answered) == (302, "Moved Temporarily", "remote", None, False)


def test_ring_timeout_without_any_response_is_an_error() -> None:
    """Cancelled at the ring timeout with not even a 100 Trying: a dead peer, reported as a timeout."""
    trace = CallTrace(URI, T0)
    trace.on_local_hangup(ring_timeout=True)
    trace.on_disconnected(487, "Request Terminated", at(45_000))
    r = trace.result()
    assert (r.status, r.ring_timeout_fired, r.hangup_by) == (487, True, "local")
    assert r.error is not None and r.error.startswith("timeout")


def test_challenge_then_silence_is_an_error_not_a_407() -> None:
    """A 407 that pjsua answered, then no response at all: the result carries pjsua's 408 and an error."""
    trace = CallTrace(URI, T0)
    trace.on_response(407, "Proxy Authentication Required", at(5))
    trace.on_disconnected(408, "Request Timeout", at(32_000), "timeout: no response from the peer")
    r = trace.result()
    assert r.status == 408 and r.hangup_by == "local"
    assert r.error is not None and r.error.startswith("timeout")


def test_challenge_then_answer_keeps_the_answer() -> None:
    """407 then 100/200 on the re-sent INVITE: the call is simply answered."""
    trace = CallTrace(URI, T0)
    trace.on_response(407, "Proxy Authentication Required", at(5))
    trace.on_response(100, "Trying", at(8))
    trace.on_response(200, "OK", at(20))
    trace.on_local_hangup()
    trace.on_disconnected(200, "Normal call clearing", at(25))
    assert (trace.result().status, trace.result().answered) == (200, True)


def test_resent_invite_records_the_challenge_it_answered() -> None:
    """INVITE, 407, INVITE again with credentials, 404: challenges (407,), status the 404."""
    trace = CallTrace(URI, T0)
    trace.on_invite_sent(27119, None)
    trace.on_invite_sent(27120, 407)
    trace.on_response(404, "Not Found", at(8))
    trace.on_disconnected(404, "Not Found", at(8))
    r = trace.result()
    assert (r.challenges, r.status, r.error) == ((407,), 404, None)


def test_first_invite_and_unchallenged_calls_have_no_challenges() -> None:
    """A challenge code offered with the very first INVITE, or no re-send at all, records nothing."""
    trace = CallTrace(URI, T0)
    trace.on_invite_sent(1, 407)  # cannot be: nothing was sent before it
    trace.on_response(200, "OK", at(5))
    trace.on_invite_sent(2, 401)  # a re-INVITE challenged inside the answered call
    trace.on_disconnected(200, "Normal call clearing", at(9))
    assert trace.result().challenges == ()


def test_two_challenges_are_kept_in_order() -> None:
    """A proxy's 407 then the callee's 401 (each answered): both, in the order pjsua met them."""
    trace = CallTrace(URI, T0)
    for cseq, challenge in ((10, None), (11, 407), (12, 401)):
        trace.on_invite_sent(cseq, challenge)
    trace.on_response(200, "OK", at(5))
    assert trace.result(now=at(6)).challenges == (407, 401)


def test_agent_stopped_mid_call_is_reported() -> None:
    """An explicit error (agent stopped) wins over a missing end, and end_at falls back to now."""
    trace = CallTrace(URI, T0)
    trace.on_response(180, "Ringing", at(100))
    r = trace.result(now=at(5000), error="agent stopped before the call ended")
    assert r.error == "agent stopped before the call ended" and r.end_at == at(5000)


def test_disconnect_is_recorded_once() -> None:
    """A second DISCONNECTED report cannot move the end time or the status."""
    trace = CallTrace(URI, T0)
    trace.on_response(486, "Busy Here", at(10))
    trace.on_disconnected(486, "Busy Here", at(10))
    trace.on_disconnected(500, "Internal", at(99))
    assert (trace.result().status, trace.result().end_at) == (486, at(10))


def account(**overrides: object) -> SipAccountConfig:
    fields: dict[str, object] = {"registrar": "127.0.0.1:5060", "username": "1001", "password": FAKE_SECRET}
    fields.update(overrides)
    return SipAccountConfig(**fields)  # type: ignore[arg-type]


def test_password_is_not_in_repr() -> None:
    """The account config is logged and shown in tracebacks; its password never is."""
    cfg = account()
    assert FAKE_SECRET not in repr(cfg) and FAKE_SECRET not in str(cfg)


def test_uris_for_udp_and_tcp() -> None:
    """No URI carries a transport parameter; with TCP/TLS it rides on the route (tests/unit/test_sip_routing.py)."""
    assert account().uri_for("+8613900001111") == "sip:+8613900001111@127.0.0.1:5060"
    tcp = account(transport="tcp")
    assert tcp.uri_for("13900001111") == "sip:13900001111@127.0.0.1:5060"
    assert tcp.registrar_uri() == "sip:127.0.0.1:5060"
    assert tcp.account_uri() == "sip:1001@127.0.0.1:5060"
    assert tcp.proxy_uris() == ("sip:127.0.0.1:5060;transport=tcp;lr",)


def test_separate_domain_routes_through_the_registrar() -> None:
    """A domain other than the registrar makes the registrar our outbound proxy."""
    cfg = account(domain="trunk.example.invalid")
    assert cfg.uri_for("8613900001111") == "sip:8613900001111@trunk.example.invalid"
    assert cfg.proxy_uris() == ("sip:127.0.0.1:5060;lr",)
    assert account().proxy_uris() == ()


@pytest.mark.parametrize("user", ["", "139 0000 1111", "1390@evil", "139;x=1", "<139>", "++86139", "a" * 5])
def test_uri_for_refuses_anything_but_a_dialable_number(user: str) -> None:
    """No URI syntax can be smuggled in through a number."""
    with pytest.raises(InvalidNumber):
        account().uri_for(user)


@pytest.mark.parametrize(
    "overrides",
    [{"registrar": "sip:127.0.0.1"}, {"registrar": ""}, {"transport": "sctp"}, {"username": "a@b"},
     {"local_port": 70000}, {"reg_expires_s": 0}],
)
def test_bad_settings_are_refused_with_config_error(overrides: dict[str, object]) -> None:
    """Malformed trunk settings fail at construction, naming the trunk."""
    with pytest.raises(ConfigError, match="trunk 'default'"):
        account(**overrides)
