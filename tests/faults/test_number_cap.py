"""The fleet-wide cap of calls per number per day (DIALER_MAX_CALLS_PER_NUMBER_PER_DAY, 3 by default).

One number in four campaigns on two trunks: at most three of its jobs may be
queued or dialled within 24 h; the fourth waits for the oldest call to leave
the 24 h. No worker runs here: the cap is the dispatchers' to keep, and a
queued job is a call as good as placed. To make two dispatchers plan the two
trunks at the same moment (the race the cap must survive), the test holds a
SHARE lock on ``dial_jobs`` until both are waiting to mark jobs queued, then
lets them go; nothing in the dialer's code is touched.
"""

from __future__ import annotations

import pytest

from producer.campaigns import CampaignSpec, change_state, create_campaign
from producer.upload import ingest_bytes
from tests.faults.conftest import RigFactory
from tests.faults.rig import FaultRig, fictional_numbers, start_dispatchers
from tests.support.fleet import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

NUMBERS = 40
CAMPAIGNS = (("cap-a1", "default"), ("cap-a2", "default"), ("cap-b1", "other"), ("cap-b2", "other"))
ROOMY = {"DIALER_FLEET_MAX_CPS": "5000"}


def _prepare(rig: FaultRig) -> None:
    csv = ("phone\n" + "\n".join(fictional_numbers(NUMBERS)) + "\n").encode()
    with rig.connect() as conn:
        conn.execute("INSERT INTO trunks (name, registrar, username, max_concurrent, max_cps)"
                     " VALUES ('other', '127.0.0.1:9', 'nobody', 5000, 5000)")
        for name, trunk in CAMPAIGNS:
            create_campaign(conn, CampaignSpec(name=name, trunk=trunk, max_concurrent=5000, cps=1000))
            ingest_bytes(conn, name, csv, f"{name}.csv", data_dir=rig.workdir / "data")


def _race_dispatchers(rig: FaultRig, dispatchers: int) -> None:
    """Start the campaigns while dial_jobs is SHARE-locked; release once every dispatcher waits on it."""
    start_dispatchers(rig, dispatchers)
    with rig.connect() as gate:
        gate.autocommit = False
        gate.execute("LOCK TABLE dial_jobs IN SHARE MODE")
        with rig.connect() as conn:
            for name, _ in CAMPAIGNS:
                change_state(conn, name, "start")

        def waiting() -> bool:
            rows = rig.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                             " AND application_name = 'sip-dialer-dispatch'")
            # The first dispatcher to lock a number blocks here holding it; the others skip that number
            # (its lock is taken) rather than wait, so one waiter is the race at its tightest.
            return int(rows[0][0]) >= 1
        try:
            wait_until(waiting, 60, "a dispatcher waiting to mark jobs queued")
        finally:
            gate.commit()

    def planned() -> bool:
        return rig.query("SELECT count(*) FROM dial_jobs WHERE status = 'pending' AND next_attempt_at <= now()"
                         )[0][0] == 0
    wait_until(planned, 60, "every due job planned")


def _calls_per_number(rig: FaultRig) -> dict[str, int]:
    rows = rig.query("SELECT e164, count(*) FILTER (WHERE status = 'queued') FROM dial_jobs GROUP BY e164")
    return {str(e164): int(n) for e164, n in rows}


def _assert_capped(rig: FaultRig) -> None:
    per_number = _calls_per_number(rig)
    over = {n: c for n, c in per_number.items() if c > 3}
    print(f"    numbers over the cap: {len(over)} of {len(per_number)}")
    assert not over, f"{len(over)} numbers queued more than 3 times, e.g. {sorted(over.items())[:3]}"
    postponed = rig.query("SELECT count(*) FROM dial_jobs WHERE status = 'pending'"
                          " AND next_attempt_at > now() + interval '23 hours'")[0][0]
    assert postponed == NUMBERS, "each number's fourth job waits a day"


def test_one_dispatcher_keeps_the_cap_across_trunks(rig_factory: RigFactory) -> None:
    """One dispatcher plans both trunks in turn: each number is queued 3 times, its 4th job postponed ~24 h."""
    rig = rig_factory(trunk_max_concurrent=5000, trunk_max_cps=5000, extra_env=ROOMY)
    _prepare(rig)
    _race_dispatchers(rig, 1)
    _assert_capped(rig)


def test_two_dispatchers_keep_the_cap_across_trunks(rig_factory: RigFactory) -> None:
    """Two dispatchers plan the two trunks at the same moment: still at most 3 calls per number per day."""
    rig = rig_factory(trunk_max_concurrent=5000, trunk_max_cps=5000, extra_env=ROOMY)
    _prepare(rig)
    _race_dispatchers(rig, 2)
    _assert_capped(rig)


