"""Pure logic of the sandbox PBX: plan parsing, routing, digest, nonce policy, SDP answers."""

from __future__ import annotations

import functools
import gc
import hashlib
import re
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sandbox.auth import Authenticator, Verdict
from sandbox.cli import register
from sandbox.digest import DigestAnswer, challenge, expected_response, verify
from sandbox.plan import Action, Plan, ReferAnswer, Treatment, User, load_plan, parse_plan, parse_plan_text
from sandbox.routing import Outcome, route
from sandbox.sdp import RemoteAudio, answer_sdp, remote_audio
from sandbox.timers import Timers
from shared.errors import ConfigError

FAKE_PASSWORD = "obviously-fake-password"

GOOD_PLAN = f"""
realm = "sandbox"
require_plus_prefix = true
challenge_invite = false
qop_auth = false
max_expires_s = 120

[[users]]
username = "demo"
password = "{FAKE_PASSWORD}"

[[rules]]
match = "+8613900001111"
action = "answer"
hangup_after_s = 1.5
answer_after_s = 0.5

[[rules]]
match = "+86139000022*"
action = "busy"

[[rules]]
match = "+8613900003333"
action = "ring"

[[rules]]
match = "+8613900004444"
action = "unavailable_once"

[[rules]]
match = "+8613900005555"
action = "reject"

[[rules]]
match = "+861390000????"
action = "not_found"

[default]
action = "answer"
"""


def _plan(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"users": [{"username": "demo", "password": FAKE_PASSWORD}]}
    data.update(overrides)
    return data


# --- plan parsing ---------------------------------------------------------------------------------


def test_good_plan_parses_every_field() -> None:
    """A complete plan file becomes a Plan with the values written in it, rules in order."""
    plan = parse_plan_text(GOOD_PLAN, "good.toml")
    assert plan.realm == "sandbox"
    assert (plan.require_plus_prefix, plan.challenge_invite, plan.qop_auth) == (True, False, False)
    assert plan.max_expires_s == 120
    assert plan.users == (User("demo", FAKE_PASSWORD),)
    assert [r.match for r in plan.rules][:2] == ["+8613900001111", "+86139000022*"]
    assert plan.rules[0].treatment == Treatment(Action.ANSWER, hangup_after_s=1.5, answer_after_s=0.5)
    assert plan.rules[1].treatment.hangup_after_s == 3.0  # the documented default
    assert plan.default == Treatment(Action.ANSWER)
    assert plan.no_answer_after_s == 120.0  # the documented default: a carrier's no-answer timer


def test_shipped_plan_loads_and_offers_every_behaviour() -> None:
    """The plan in the package is valid and has numbers that answer, are busy, ring and fail once."""
    plan = load_plan()
    actions = {rule.treatment.action for rule in plan.rules}
    assert {Action.ANSWER, Action.BUSY, Action.RING, Action.UNAVAILABLE_ONCE} <= actions
    assert plan.password_for("demo") is not None
    # fictional 139 0000 xxxx numbers only; named extensions (the agent queue) have no digits at all
    assert all(rule.match.startswith("+86139") or rule.match.isalpha() for rule in plan.rules)
    treatments = [rule.treatment for rule in plan.rules]
    assert {"1", "9"} <= {t.press for t in treatments}  # callees that press keys for call flows
    assert {ReferAnswer.ACCEPT, ReferAnswer.REFUSE} <= {t.refer for t in treatments}


def test_load_plan_reads_a_file(tmp_path: Path) -> None:
    """--plan FILE loads that file instead of the shipped plan."""
    path = tmp_path / "mine.toml"
    path.write_text(GOOD_PLAN, encoding="utf-8")
    assert load_plan(path).max_expires_s == 120


def test_missing_plan_file_names_the_path(tmp_path: Path) -> None:
    """A --plan path that does not exist is a ConfigError naming it."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_plan(missing)


def test_toml_syntax_error_is_a_config_error() -> None:
    """Broken TOML is reported as a ConfigError with the source name, not a tomllib exception."""
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        parse_plan_text("users = [", "bad.toml")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_plan(users=[]), "users"),
        ({}, "users"),
        (_plan(users=[{"username": "", "password": "x"}]), r"users\[0\]\.username"),
        (_plan(users=[{"username": "demo"}]), r"users\[0\]\.password"),
        (_plan(users=[{"username": "demo", "password": "x", "pin": 1}]), r"users\[0\]\.pin"),
        (_plan(users=[{"username": "demo", "password": "x"}, {"username": "demo", "password": "y"}]),
         r"users\[1\]\.username"),
        (_plan(rules=[{"action": "busy"}]), r"rules\[0\]\.match"),
        (_plan(rules=[{"match": "+1", "action": "busy"}, {"match": "+2", "action": "ansewr"}]),
         r"rules\[1\]\.action"),
        (_plan(rules=[{"match": "+1"}]), r"rules\[0\]\.action"),
        (_plan(rules=[{"match": "+1", "action": "answer", "hangup_after_s": 0}]),
         r"rules\[0\]\.hangup_after_s"),
        (_plan(rules=[{"match": "+1", "action": "answer", "hangup_after_s": "3"}]),
         r"rules\[0\]\.hangup_after_s"),
        (_plan(rules=[{"match": "+1", "action": "answer", "answer_after_s": -1}]),
         r"rules\[0\]\.answer_after_s"),
        (_plan(rules=[{"match": "+1", "action": "answer", "hangup": 3}]), r"rules\[0\]\.hangup"),
        (_plan(rules={"match": "+1"}), "rules"),
        (_plan(default={"action": "explode"}), r"default\.action"),
        (_plan(default="busy"), "default"),
        (_plan(require_plus_prefix="yes"), "require_plus_prefix"),
        (_plan(challenge_invite=1), "challenge_invite"),
        (_plan(qop_auth=None), "qop_auth"),
        (_plan(max_expires_s=0), "max_expires_s"),
        (_plan(no_answer_after_s=0), "no_answer_after_s"),
        (_plan(no_answer_after_s="2m"), "no_answer_after_s"),
        (_plan(realm=""), "realm"),
        (_plan(relam="sandbox"), "relam"),
    ],
)
def test_each_malformed_field_is_named(data: dict[str, Any], field: str) -> None:
    """Every kind of mistake fails with a ConfigError that names the offending field."""
    with pytest.raises(ConfigError, match=rf"plan\.toml: {field}:"):
        parse_plan(data, "plan.toml")


def test_passwords_stay_out_of_reprs_and_errors() -> None:
    """Neither a Plan's repr nor a validation error ever shows a password."""
    plan = parse_plan(_plan())
    assert FAKE_PASSWORD not in repr(plan)
    with pytest.raises(ConfigError) as caught:
        parse_plan(_plan(users=[{"username": "x y", "password": FAKE_PASSWORD}]))
    assert FAKE_PASSWORD not in str(caught.value)


# --- routing --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan() -> Plan:
    return parse_plan_text(GOOD_PLAN)


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        ("+8613900001111", Outcome.ANSWER),
        ("13900001111", Outcome.NOT_FOUND),  # national form: no + prefix
        ("8613900001111", Outcome.NOT_FOUND),  # country code without +
        ("+8613900002200", Outcome.BUSY),  # glob
        ("+8613900002299", Outcome.BUSY),
        ("+8613900003333", Outcome.RING),
        ("+8613900005555", Outcome.REJECT),
        ("+8613900009999", Outcome.NOT_FOUND),  # the ???? rule
        ("+8613900001", Outcome.ANSWER),  # too short for ????: default
        ("+8613800001111", Outcome.ANSWER),  # default
    ],
)
def test_route_by_number(plan: Plan, number: str, outcome: Outcome) -> None:
    """Numbers map to outcomes by the + rule, then the first matching exact/glob rule, then default."""
    assert route(number, plan).outcome is outcome


def test_first_matching_rule_wins_and_carries_its_timings(plan: Plan) -> None:
    """The exact rule's timings come with the decision; its reason names the rule."""
    decision = route("+8613900001111", plan)
    assert (decision.hangup_after_s, decision.answer_after_s) == (1.5, 0.5)
    assert decision.why == "rule +8613900001111"


def test_unavailable_once_fails_first_then_answers(plan: Plan) -> None:
    """unavailable_once is 503 on the first call to the number and answered on every later one."""
    assert route("+8613900004444", plan, calls_before=0).outcome is Outcome.UNAVAILABLE
    assert route("+8613900004444", plan, calls_before=1).outcome is Outcome.ANSWER
    assert route("+8613900004444", plan, calls_before=5).outcome is Outcome.ANSWER


def test_plus_prefix_can_be_optional() -> None:
    """With require_plus_prefix = false the national form is routed like any other number."""
    plan = parse_plan(_plan(require_plus_prefix=False, default={"action": "busy"}))
    assert route("13900001111", plan).outcome is Outcome.BUSY


def test_outcome_codes() -> None:
    """Each outcome ends in the status code the carrier behaviour calls for."""
    codes = {o: o.code for o in Outcome}
    assert codes == {Outcome.ANSWER: 200, Outcome.RING: 180, Outcome.BUSY: 486, Outcome.UNAVAILABLE: 503,
                     Outcome.REJECT: 603, Outcome.NOT_FOUND: 404}


# --- digest ---------------------------------------------------------------------------------------

# RFC 2617 section 3.5, the worked example.
RFC2617 = DigestAnswer(
    username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
    uri="/dir/index.html", response="6629fae49393a05397450978507c4ef1", algorithm=None,
    qop="auth", nc="00000001", cnonce="0a4f113b",
)
RFC2617_PASSWORD = "Circle Of Life"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_digest_matches_rfc2617_worked_example() -> None:
    """The qop=auth response for the RFC 2617 example is the one printed in the RFC."""
    assert expected_response(RFC2617, RFC2617_PASSWORD, "GET") == "6629fae49393a05397450978507c4ef1"
    assert verify(RFC2617, RFC2617_PASSWORD, "GET")


def test_digest_without_qop_follows_rfc2617_formula() -> None:
    """Without qop the response is KD(H(A1), nonce ":" H(A2)), as RFC 2617 section 3.2.2 gives it (RFC 2069 compat)."""
    answer = DigestAnswer("Mufasa", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                          "/dir/index.html", "670fd8c2df070c60b045671b8b24ff02")
    ha1 = _md5(f"Mufasa:testrealm@host.com:{RFC2617_PASSWORD}")
    assert _md5(f"{ha1}:{answer.nonce}:{_md5('GET:/dir/index.html')}") == answer.response
    assert verify(answer, RFC2617_PASSWORD, "GET")


@pytest.mark.parametrize(
    "change",
    [
        {"response": "0" * 32},
        {"nc": "00000002"},
        {"cnonce": "0a4f113c"},
        {"uri": "/dir/other.html"},
        {"algorithm": "SHA-256"},
        {"qop": "auth-int"},
        {"cnonce": None},
    ],
)
def test_digest_rejects_any_tampering(change: dict[str, Any]) -> None:
    """Changing any input of the hash, or using a scheme we do not offer, fails verification."""
    tampered = replace(RFC2617, **change)
    assert not verify(tampered, RFC2617_PASSWORD, "GET")


def test_digest_wrong_password_or_method_fails() -> None:
    """The same answer does not verify for another password or another SIP method."""
    assert not verify(RFC2617, "Circle of Life", "GET")
    assert not verify(RFC2617, RFC2617_PASSWORD, "INVITE")


def test_challenge_header_format() -> None:
    """A challenge reads like a carrier's: Digest realm, nonce, algorithm=MD5, optional qop and stale."""
    assert challenge("sandbox", "n1", qop=False) == 'Digest realm="sandbox", nonce="n1", algorithm=MD5'
    assert challenge("sandbox", "n1", qop=True, stale=True).endswith(', qop="auth", stale=true')


# --- nonce policy ---------------------------------------------------------------------------------


def _answer_for(auth: Authenticator, password: str, method: str = "REGISTER") -> DigestAnswer:
    nonce = auth.challenge().split('nonce="')[1].split('"')[0]
    unsigned = DigestAnswer("demo", "sandbox", nonce, "sip:127.0.0.1", "", qop="auth", nc="00000001",
                            cnonce="abcdef01")
    return replace(unsigned, response=expected_response(unsigned, password, method))


def test_authenticator_verdicts() -> None:
    """No credentials -> challenge; unknown nonce -> stale; wrong password -> forbidden; right -> ok."""
    auth = Authenticator(parse_plan(_plan()))
    assert auth.check([], "REGISTER").verdict is Verdict.CHALLENGE
    good = _answer_for(auth, FAKE_PASSWORD)
    assert auth.check([good], "REGISTER").verdict is Verdict.OK
    assert auth.check([_answer_for(auth, "wrong-fake")], "REGISTER").verdict is Verdict.FORBIDDEN
    assert auth.check([replace(good, nonce="forged")], "REGISTER").verdict is Verdict.STALE
    assert auth.check([replace(good, realm="other")], "REGISTER").verdict is Verdict.CHALLENGE
    assert auth.check([replace(good, username="mallory")], "REGISTER").verdict is Verdict.FORBIDDEN


def test_nonces_are_random_per_challenge() -> None:
    """Two challenges never share a nonce."""
    auth = Authenticator(parse_plan(_plan()))
    assert auth.challenge() != auth.challenge()


# --- SDP answer -----------------------------------------------------------------------------------

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 96 8 0 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
    "m=video 4002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
)


def test_sdp_answer_picks_one_offered_codec_and_refuses_other_streams() -> None:
    """The answer keeps the m-line order, takes PCMU (and the offered telephone-event) and sets video to port 0."""
    answer = answer_sdp(OFFER, "127.0.0.1", 40000, 7)
    media = [line for line in answer.split("\r\n") if line.startswith("m=")]
    assert media == ["m=audio 40000 RTP/AVP 0 101", "m=video 0 RTP/AVP 97"]
    assert "c=IN IP4 127.0.0.1" in answer
    assert "a=rtpmap:0 PCMU/8000" in answer
    assert "a=rtpmap:101 telephone-event/8000" in answer


def test_remote_audio_names_where_the_caller_wants_rtp_and_the_agreed_types() -> None:
    """The caller's c=/m= address and port, the codec the answer picks, and its telephone-event type."""
    assert remote_audio(OFFER) == RemoteAudio("127.0.0.1", 4000, 0, 101)
    assert remote_audio(None) is None


def test_sdp_answer_falls_back_to_first_real_codec() -> None:
    """Without PCMU/PCMA the first offered codec that is not telephone-event is chosen, with its rtpmap."""
    offer = ("v=0\r\nm=audio 4000 RTP/AVP 101 96\r\n"
             "a=rtpmap:101 telephone-event/8000\r\na=rtpmap:96 opus/48000/2\r\n")
    answer = answer_sdp(offer, "127.0.0.1", 40000, 7)
    assert "m=audio 40000 RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2" in answer


def test_sdp_offer_without_body_gets_our_offer() -> None:
    """A late-offer INVITE (no SDP) gets an offer of PCMU and PCMA in the 200 OK."""
    assert "m=audio 40000 RTP/AVP 0 8" in answer_sdp(None, "127.0.0.1", 40000, 7)


# --- CLI wiring -----------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop", help="A second command, so Typer keeps sub-command names.")
    def noop() -> None:
        """Unused; only makes the app multi-command, like the real ``dialer``."""

    return app


def test_cli_registers_sandbox_pbx_with_help() -> None:
    """register(app) adds `sandbox-pbx` with help text for --port, --plan and --host."""
    result = CliRunner().invoke(_app(), ["sandbox-pbx", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--port", "--plan", "--host"):
        assert option in result.output


def test_cli_bad_plan_exits_with_the_field_named(tmp_path: Path) -> None:
    """A malformed --plan stops the command before binding, with the field in the message."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[users]]\nusername = "demo"\npassword = "fake"\n[default]\naction = "explode"\n')
    result = CliRunner().invoke(_app(), ["sandbox-pbx", "--plan", str(bad), "--port", "0"])
    assert result.exit_code == 2
    assert "default.action" in result.output


# --- timers ---------------------------------------------------------------------------------------


class _Dialog:
    """Stands for what a timer's callback closes over (a sandbox dialog)."""

    def __init__(self) -> None:
        self.rang_out = False


def test_cancelled_timer_neither_runs_nor_keeps_what_it_closed_over() -> None:
    """A cancelled timer stays in the heap until its deadline, but runs nothing and holds no dialog."""
    now = [0.0]
    timers = Timers(clock=lambda: now[0])
    dialog = _Dialog()
    alive = weakref.ref(dialog)
    timer = timers.schedule(120.0, functools.partial(setattr, dialog, "rang_out", True))
    kept = _Dialog()
    timers.schedule(120.0, functools.partial(setattr, kept, "rang_out", True))
    timer.cancel()
    del dialog
    gc.collect()
    assert alive() is None
    now[0] = 121.0
    timers.run_due()
    assert kept.rang_out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("press", "1a", "rules[0].press: must be DTMF keys"),
        ("press_after_s", -1, "rules[0].press_after_s: must be a number of seconds >= 0"),
        ("refer", "maybe", "rules[0].refer: 'maybe' is not one of accept, refuse"),
    ],
)
def test_acting_callee_fields_are_checked(field: str, value: object, message: str) -> None:
    """A bad press/press_after_s/refer is one error naming the field; nothing is guessed."""
    raw = {"users": [{"username": "u", "password": "p"}],
           "rules": [{"match": "+8613900007001", "action": "answer", field: value}]}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_plan(raw)


def test_acting_callee_fields_parse() -> None:
    """press, press_after_s and refer land in the rule's treatment."""
    raw = {"users": [{"username": "u", "password": "p"}],
           "rules": [{"match": "+8613900007001", "action": "answer", "press": "1#", "press_after_s": 0.5,
                      "refer": "accept"}]}
    treatment = parse_plan(raw).rules[0].treatment
    assert (treatment.press, treatment.press_after_s, treatment.refer) == ("1#", 0.5, ReferAnswer.ACCEPT)
