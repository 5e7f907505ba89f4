"""Three worker hosts and two dispatchers on one Postgres, one Redis, one trunk: caps hold fleet-wide."""

from __future__ import annotations

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.rig import Plan
from tests.faults.scenarios import run_scale_out

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

TRUNK_MAX_CONCURRENT = 6
TRUNK_MAX_CPS = 4.0


def test_fleet_of_three_workers_and_two_dispatchers_keeps_trunk_caps_and_dials_once(
    rig_factory: RigFactory,
) -> None:
    """`dialer worker --processes 1` x3 (separate supervisors) and `dialer dispatch` x2, 48 jobs.

    The campaign allows 50 calls and 50/s; the trunk allows 6 and 4/s, so the
    trunk's caps bind. Pins, measured on sipp's side of the wire: never more
    than 6 dialogs at once; in any 5 s no more starts than the rate allows
    plus its one-second burst (the shared GCRA pacer's tolerance) plus one;
    every number dialled exactly once; nothing lost. Throughput is printed,
    not asserted (bench/bench_faults.py measures how it grows with workers).
    """
    rig = rig_factory(trunk_max_concurrent=TRUNK_MAX_CONCURRENT, trunk_max_cps=TRUNK_MAX_CPS)
    plan = Plan("fleet", jobs=48, max_concurrent=50, cps=50.0, hold_s=1.0)
    result, facts = run_scale_out(rig, plan, workers=3, dispatchers=2)
    assert facts.dialled_numbers == 48
    assert result.dialogs == 48, "each number dialled once: answer_fast-like carrier, no retries expected"
    assert result.duplicate_calls == 0, result.details
    assert result.lost_outcomes == 0, result.details
    assert facts.max_concurrent_seen <= TRUNK_MAX_CONCURRENT
    allowed = TRUNK_MAX_CPS * facts.window_s + TRUNK_MAX_CPS * 1.0 + 1
    assert facts.max_starts_in_window <= allowed, (facts.max_starts_in_window, allowed)
    assert len(rig.query("SELECT DISTINCT worker FROM call_attempts")) == 3, "every host took calls"
