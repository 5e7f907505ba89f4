"""The Redis side of pacing: the Lua GCRA equals the pure one, is shared, and the throttle reads worker counts."""

from __future__ import annotations

import pytest
import redis

from producer.pacing import Limit, Pacer, TrunkThrottle, codes_key, fleet_limit, trunk_limit
from shared.throttle import BUCKET_S, ThrottlePolicy, gcra_take

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


def test_lua_matches_the_pure_gcra(redis_client: redis.Redis) -> None:
    """The same sequence of requests gets the same grants in Redis as in shared.throttle.gcra_take."""
    pacer = Pacer(redis_client, burst_s=1.0)
    limits = [Limit("dialer:pace:campaign:1", 5.0), Limit("dialer:pace:trunk:t", 3.0), fleet_limit(50.0)]
    pure_limits = [(1 / lim.rate, max(1.0, lim.rate)) for lim in limits]
    tats: list[float | None] = [None, None, None]
    for offset, wanted in [(0.0, 10), (0.1, 10), (0.4, 2), (1.0, 10), (1.05, 1), (3.0, 100), (3.3, 7)]:
        expected, new_tats = gcra_take(tats, T0 + offset, pure_limits, wanted)
        tats = list(new_tats)
        assert pacer.take(wanted, limits, now=T0 + offset) == expected


def test_two_pacers_share_one_budget(redis_client: redis.Redis) -> None:
    """Two dispatchers asking at the same instant split one limiter's burst; they do not each get it."""
    first, second = Pacer(redis_client), Pacer(redis_client)
    limit = [trunk_limit("shared", 4.0)]
    assert first.take(10, limit, now=T0) + second.take(10, limit, now=T0) == 4


def test_limiter_keys_expire(redis_client: redis.Redis) -> None:
    """A limiter leaves no key behind for long: its TTL ends soon after its TAT."""
    Pacer(redis_client).take(1, [trunk_limit("ttl", 1.0)])
    ttl = redis_client.pttl("dialer:pace:trunk:ttl")
    assert 0 < int(ttl) <= 3000


def test_throttle_reads_the_workers_counters(redis_client: redis.Redis) -> None:
    """Counters in the workers' format (HINCRBY per 10 s bucket) cut the factor, and only the named trunk's."""
    now = T0 + 5
    for seconds_ago in (0, 10, 20):
        key = codes_key("busy-trunk", int(now - seconds_ago) // BUCKET_S)
        redis_client.hincrby(key, "total", 40)
        redis_client.hincrby(key, "throttled", 30)
        redis_client.expire(key, 120)
    throttle = TrunkThrottle(redis_client, ThrottlePolicy(), refresh_s=0)
    assert throttle.factor("busy-trunk", now) == 0.5
    assert throttle.factor("calm-trunk", now) == 1.0
    assert throttle.factor("busy-trunk", now + 1) == 0.5  # no new evidence, within step_s
