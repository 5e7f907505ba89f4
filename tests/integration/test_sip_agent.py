"""The SIP agent against a real sipp peer and the real pjsua2 wheel, on loopback.

pjsua2 allows one Endpoint per process, so every test starts its own agent
and stops it before the next (the ``agent`` fixture), which also pins that
libDestroy followed by a new libCreate works in one process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest

from shared.errors import CapacityExceeded, ConfigError
from tests.support.sipp import DEFAULT_KEYS, SippPeer, digest_matches, free_port, overlapping_dialogs
from worker.sip import AgentStopped, CallResult, RegistrationResult, SipAccountConfig, SipAgent

pytestmark = pytest.mark.integration

USER = DEFAULT_KEYS["username"]
SECRET = DEFAULT_KEYS["password"]
AgentFactory = Callable[..., SipAgent]
Sipp = Callable[..., SippPeer]


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition that has no event to wait on (another process's progress)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def account_for(peer: SippPeer, **overrides: object) -> SipAccountConfig:
    fields: dict[str, object] = {"registrar": peer.address, "username": USER, "password": SECRET}
    fields.update(overrides)
    return SipAccountConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def agent_factory() -> Iterator[AgentFactory]:
    """Builds agents; stops any still running at teardown (one Endpoint per process)."""
    agents: list[SipAgent] = []

    def build(account: SipAccountConfig, **kwargs: object) -> SipAgent:
        agent = SipAgent(account, **kwargs)  # type: ignore[arg-type]
        agents.append(agent)
        return agent

    yield build
    for agent in agents:
        agent.stop(grace_s=0)


def test_register_answers_401_challenge_with_digest(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """A registrar's 401 is answered with a correct digest, reported as a challenge, and we are registered."""
    peer = sipp_uas("registrar_auth")
    agent = agent_factory(account_for(peer))
    result = agent.start()
    assert result is not None
    assert (result.status, result.registered, result.challenges) == (200, True, (401,))
    assert agent.is_registered and agent.registration == result
    assert result.expires_s == 300
    registers = peer.received("REGISTER")
    assert registers[0].header("Authorization") is None
    assert digest_matches(registers[1], username=USER, password=SECRET, header="Authorization")


def test_wrong_password_is_reported_not_retried(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """403 to our digest: reported as auth_rejected, not registered, no automatic retry scheduled."""
    peer = sipp_uas("registrar_auth")
    agent = agent_factory(account_for(peer, password="wrong-fake-secret"))
    result = agent.start()
    assert result is not None
    assert (result.status, result.registered, result.auth_rejected, result.challenges) == (403, False, True, (401,))
    assert not agent.is_registered
    assert agent.next_register_in_s is None
    agent.stop()
    assert len(peer.received("REGISTER")) == 2  # the unauthenticated one and our one wrong digest


def test_silent_registrar_gives_a_result_not_an_exception(agent_factory: AgentFactory) -> None:
    """No registrar listening: start() and reregister() both return an unregistered 408, and a retry is due."""
    agent = agent_factory(SipAccountConfig(registrar=f"127.0.0.1:{free_port()}", username=USER, password=SECRET))
    first = agent.start(register_timeout_s=0.3)
    assert first is not None and (first.status, first.registered) == (408, False)
    again = agent.reregister(timeout_s=0.3)
    assert (again.status, again.registered) == (408, False)
    assert not agent.is_registered


@pytest.mark.slow  # pjsua never refreshes sooner than 5 s after a REGISTER
def test_registration_is_refreshed_before_expiry(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """With a 2 s registration the agent REGISTERs again by itself, and stays registered."""
    peer = sipp_uas("registrar_auth", keys={"reg_expires": "2"})
    agent = agent_factory(account_for(peer, reg_expires_s=2))
    refreshed = threading.Event()
    results: list[RegistrationResult] = []

    def on_change(result: RegistrationResult) -> None:
        results.append(result)
        if len(results) >= 2:
            refreshed.set()

    agent.on_registration_change(on_change)
    first = agent.start()
    assert first is not None and first.registered
    assert refreshed.wait(timeout=15)
    assert all(r.registered for r in results[:2])
    assert agent.reregister().registered


def test_invite_407_is_answered_with_credentials(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """A 407 to the INVITE is answered by pjsua with a correct Proxy-Authorization digest."""
    peer = sipp_uas("invite_auth")
    agent = agent_factory(account_for(peer, register=False))
    assert agent.start() is None
    result = agent.call(agent.uri_for("+8613900001111"))
    assert (result.status, result.answered, result.hangup_by, result.error) == (200, True, "local", None)
    assert result.challenges == (407,)
    invites = peer.received("INVITE")
    assert len(invites) == 2
    assert invites[0].header("Proxy-Authorization") is None
    assert digest_matches(invites[1], username=USER, password=SECRET)
    assert result.call_id == invites[1].call_id


def test_number_plan_rejects_national_forms_and_answers_plus86(
    sipp_uas: Sipp, agent_factory: AgentFactory
) -> None:
    """Each variant is one call: 404 for 139... and 86..., 200 for +86... (carrier: auth on both sides)."""
    peer = sipp_uas("carrier")
    agent = agent_factory(account_for(peer))
    reg = agent.start()
    assert reg is not None and reg.registered
    results = {v: agent.call(agent.uri_for(v)) for v in ("13900001111", "8613900001111", "+8613900001111")}
    for variant in ("13900001111", "8613900001111"):
        r = results[variant]
        assert (r.status, r.reason, r.answered, r.rang, r.hangup_by, r.error) == (
            404, "Not Found", False, False, "remote", None
        )
    assert [r.challenges for r in results.values()] == [(407,)] * 3  # each call met its own 407
    ok = results["+8613900001111"]
    assert ok.answered and ok.rang and [code for code, _ in ok.provisional] == [100, 180]
    assert ok.invite_at <= ok.first_provisional_at <= ok.answer_at <= ok.end_at  # type: ignore[operator]
    assert ok.post_dial_delay_s is not None and ok.setup_s >= ok.post_dial_delay_s
    seen = {d.user: d.final_status for d in peer.dialogs()}
    assert seen == {"13900001111": 404, "8613900001111": 404, "+8613900001111": 200}
    assert {r.call_id for r in results.values()} == {d.call_id for d in peer.dialogs()}


def test_busy(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """486 comes back as the final status, with the 100 before it, and no error."""
    peer = sipp_uas("busy_486")
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    r = agent.call(agent.uri_for("+8613900001111"))
    assert (r.status, r.reason, r.answered, r.hangup_by, r.error) == (486, "Busy Here", False, "remote", None)
    assert [code for code, _ in r.provisional] == [100]
    assert r.challenges == ()  # nothing challenged, nothing invented


def test_challenges_are_not_observed_when_switched_off(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """observe_challenges=False: the same 401 and 407 are still answered, just not reported."""
    peer = sipp_uas("carrier")
    agent = agent_factory(account_for(peer), observe_challenges=False)
    reg = agent.start()
    assert reg is not None and (reg.registered, reg.challenges) == (True, ())
    r = agent.call(agent.uri_for("+8613900001111"))
    assert (r.answered, r.challenges) == (True, ())
    assert peer.sent_statuses("REGISTER")[:2] == [401, 200] and peer.sent_statuses()[0] == 407


def test_redirect_is_reported_not_followed(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """A 302 comes back as the final status and the Contact it names is never dialled."""
    peer = sipp_uas("redirect_302")
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    r = agent.call(agent.uri_for("+8613900001111"))
    assert (r.status, r.reason, r.answered, r.hangup_by, r.error) == (302, "Moved Temporarily", False, "remote", None)
    assert [m.request_uri for m in peer.received("INVITE")] == [agent.uri_for("+8613900001111")]


def test_ring_timeout_cancels(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """A call that only rings is CANCELled at the ring timeout and ends 487, flagged as ours."""
    peer = sipp_uas("ring_no_answer")
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    r = agent.call(agent.uri_for("+8613900001111"), ring_timeout_s=0.5)
    assert (r.status, r.ring_timeout_fired, r.hangup_by, r.rang, r.answered) == (487, True, "local", True, False)
    assert r.error is None
    assert len(peer.received("CANCEL")) == 1


def test_503_then_success(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """A 503 is a plain final status (no error text); the next INVITE is answered."""
    peer = sipp_uas("flaky_503")
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    first = agent.call(agent.uri_for("+8613900001111"))
    second = agent.call(agent.uri_for("+8613900001111"))
    assert (first.status, first.error, first.answered) == (503, None, False)
    assert (second.status, second.answered) == (200, True)


def test_remote_bye_ends_the_call_early(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """The far end hangs up during our hold: hangup_by is remote and the call ends before hold_s."""
    peer = sipp_uas("remote_bye", pause_ms=200)
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    r = agent.call(agent.uri_for("+8613900001111"), hold_s=60)
    assert (r.status, r.answered, r.hangup_by) == (200, True, "remote")
    assert 0 < r.talk_s < 60
    assert len(peer.received("BYE")) == 0  # we never sent one


def test_fifth_concurrent_call_waits_for_a_slot(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """Five simultaneous call() from five threads: all answered, never more than four live at once."""
    peer = sipp_uas("answer_fast")
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    results: list[CallResult] = []
    lock = threading.Lock()

    def dial(i: int) -> None:
        r = agent.call(agent.uri_for(f"+86139000011{i:02d}"), hold_s=0.3)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=dial, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == [200] * 5
    dialogs = peer.dialogs()
    assert len(dialogs) == 5
    most_at_once = max(sum(1 for d in dialogs if d.started_at <= e.started_at < d.ended_at) for e in dialogs)
    assert most_at_once <= 4
    assert overlapping_dialogs(dialogs) == []


def test_refuses_past_its_waiting_room_and_stop_resolves_every_future(
    sipp_uas: Sipp, agent_factory: AgentFactory
) -> None:
    """With no waiting room the 5th request is refused at once; stop() hangs up and resolves the rest."""
    peer = sipp_uas("answer_fast")
    agent = agent_factory(account_for(peer, register=False), max_waiting=0)
    agent.start()
    futures = [agent.place_call(agent.uri_for(f"+86139000022{i:02d}"), hold_s=120) for i in range(4)]
    with pytest.raises(CapacityExceeded):
        agent.place_call(agent.uri_for("+8613900002299"))
    wait_until(lambda: len(peer.received("ACK")) == 4)  # all four answered and live
    agent.stop(grace_s=0.2)
    assert all(f.done() for f in futures)
    for f in futures:
        r = f.result()
        assert (r.status, r.answered, r.hangup_by, r.error) == (200, True, "local", None)
        assert r.talk_s > 0
    assert len(peer.received("BYE")) == 4
    with pytest.raises(AgentStopped):
        agent.place_call(agent.uri_for("+8613900002299"))


def test_stop_fails_waiting_requests_with_agent_stopped(
    sipp_uas: Sipp, agent_factory: AgentFactory
) -> None:
    """Requests still waiting for a slot when stop() runs fail with AgentStopped (no INVITE sent)."""
    peer = sipp_uas("answer_fast")
    agent = agent_factory(account_for(peer, register=False))
    agent.start()
    futures: list[Future[CallResult]] = [
        agent.place_call(agent.uri_for(f"+86139000033{i:02d}"), hold_s=120) for i in range(7)
    ]
    agent.stop(grace_s=0)
    outcomes = [f.exception() is None for f in futures]
    assert all(f.done() for f in futures)
    stopped = [f for f in futures if isinstance(f.exception(), AgentStopped)]
    assert len(stopped) == outcomes.count(False) and len(stopped) >= 3
    assert len(peer.received("INVITE")) == outcomes.count(True)


def test_a_second_agent_in_one_process_is_refused_then_allowed_after_stop(
    sipp_uas: Sipp, agent_factory: AgentFactory
) -> None:
    """One Endpoint per process: a second start() is refused while one runs, fine after stop()."""
    peer = sipp_uas("answer_fast")
    first = agent_factory(account_for(peer, register=False))
    first.start()
    second = agent_factory(account_for(peer, register=False))
    with pytest.raises(ConfigError):
        second.start()
    first.stop()
    third = agent_factory(account_for(peer, register=False))
    third.start()
    assert third.call(third.uri_for("+8613900004444")).answered


def test_tcp_transport(sipp_uas: Sipp, agent_factory: AgentFactory) -> None:
    """transport='tcp' registers and calls over TCP; the transport rides on the Route, not on the dialled URI."""
    peer = sipp_uas("carrier", transport="tcp")
    agent = agent_factory(account_for(peer, transport="tcp"))
    reg = agent.start()
    assert reg is not None and (reg.registered, reg.challenges) == (True, (401,))
    r = agent.call(agent.uri_for("+8613900005555"))
    assert (r.answered, r.challenges) == (True, (407,))
    invites = peer.received("INVITE")
    assert invites and all(";transport" not in (m.request_uri or "") for m in invites)
    assert all(f"<sip:{peer.address};transport=tcp;lr>" in (m.header("Route") or "") for m in invites)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_unreachable_peer_is_a_transport_error(transport: str, agent_factory: AgentFactory) -> None:
    """Nothing listens on the port: no SIP response, so status is pjsua's 503 and error says why."""
    closed_port = free_port("tcp")
    agent = agent_factory(
        SipAccountConfig(registrar=f"127.0.0.1:{closed_port}", username=USER, password=SECRET,
                         register=False, transport=transport)  # type: ignore[arg-type]
    )
    agent.start()
    r = agent.call(agent.uri_for("+8613900007777"))
    assert (r.status, r.answered, r.hangup_by) == (503, False, "local")
    assert r.error is not None and "transport error" in r.error


def test_password_never_appears_in_logs_output_or_reprs(
    sipp_uas: Sipp,
    agent_factory: AgentFactory,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Register (401 dance), a 407 call and a stop at DEBUG: the password is nowhere to be seen."""
    caplog.set_level("DEBUG")
    peer = sipp_uas("carrier")
    account = account_for(peer)
    agent = agent_factory(account, log_level=3)
    reg = agent.start()
    result = agent.call(agent.uri_for("+8613900006666"))
    agent.stop()
    out, err = capfd.readouterr()
    texts = [caplog.text, out, err, repr(account), str(account), repr(agent), repr(reg), repr(result)]
    assert all(SECRET not in text for text in texts)
    assert all("Authorization:" not in text and "response=" not in text for text in texts)  # nor our digest
    assert result.answered and result.challenges == (407,)  # the password was used, just never shown
