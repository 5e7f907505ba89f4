"""Calls-per-second shared by every dispatcher, and the trunk's throttle factor, both in Redis.

Several dispatchers may run at once; if each paced on its own, two of them
would call at twice the campaign's ``cps``. So the limiters (one per campaign,
one per trunk, one for the fleet) live in Redis as GCRA theoretical arrival
times, and one Lua script takes from all of them atomically, with Redis's own
clock: a grant is consistent across dispatchers and across hosts with skewed
clocks. The arithmetic is :func:`shared.throttle.gcra_take`, tested there;
this module only runs it where the state is.

The throttle factor is read from the per-trunk response counters the workers
write (``HINCRBY dialer:codes:{trunk}:{unix_ts // 10} total|throttled 1``,
expiring after 120 s) and fed to :func:`shared.throttle.next_state`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared.throttle import BUCKET_S, WINDOW_BUCKETS, CodeCounts, ThrottlePolicy, ThrottleState, next_state

PACE_PREFIX = "dialer:pace"

# KEYS: limiter keys. ARGV: wanted, now ('' = Redis TIME), then interval and burst per key.
# Mirrors shared.throttle.gcra_take; returns {granted, now as text}.
_GCRA_LUA = """
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local granted = tonumber(ARGV[1])
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local room = math.floor((now + burst * interval - tat) / interval + 1e-9)
  if room < granted then granted = room end
end
if granted < 0 then granted = 0 end
if granted > 0 then
  for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[1 + 2 * i])
    local tat = tats[i] + granted * interval
    local ttl = math.ceil((tat - now) * 1000) + 1000
    redis.call('SET', key, string.format('%.6f', tat), 'PX', ttl)
  end
end
return {granted, string.format('%.6f', now)}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """One limiter: a Redis key and its rate in calls per second."""

    key: str
    rate: float


def campaign_limit(campaign_id: int, cps: float) -> Limit:
    return Limit(f"{PACE_PREFIX}:campaign:{campaign_id}", cps)


def trunk_limit(trunk: str, cps: float) -> Limit:
    return Limit(f"{PACE_PREFIX}:trunk:{trunk}", cps)


def fleet_limit(cps: float) -> Limit:
    return Limit(f"{PACE_PREFIX}:fleet", cps)


def codes_key(trunk: str, bucket: int) -> str:
    """The hash the workers count final responses in: fields ``total`` and ``throttled``."""
    return f"dialer:codes:{trunk}:{bucket}"


class Pacer:
    """Takes call starts from Redis-held GCRA limiters, atomically across dispatchers.

    ``burst_s`` is how many seconds' worth of calls may start at once after a
    quiet spell (at least one call): it absorbs the jitter of the dispatcher's
    tick so a slightly late tick does not lose its share of the rate.
    """

    def __init__(self, client: redis.Redis, *, burst_s: float = 1.0) -> None:
        self._client = client
        self._burst_s = burst_s
        self._script: Any = client.register_script(_GCRA_LUA)

    def burst(self, rate: float) -> int:
        """The most one limiter at ``rate`` can ever grant at once: no use selecting more rows than that."""
        return int(max(1.0, rate * self._burst_s) + 1e-9)

    def take(self, wanted: int, limits: Sequence[Limit], *, now: float | None = None) -> int:
        """Grant up to ``wanted`` call starts that every limiter allows; ``now`` only for tests."""
        if wanted <= 0 or not limits:
            return max(wanted, 0)
        args: list[float | int | str] = [wanted, "" if now is None else f"{now:.6f}"]
        for limit in limits:
            args += [1.0 / limit.rate, max(1.0, limit.rate * self._burst_s)]
        granted, _now = self._script(keys=[limit.key for limit in limits], args=args)
        return int(granted)


class TrunkThrottle:
    """Each trunk's pace factor, from the workers' response counters, refreshed every ``refresh_s``."""

    def __init__(
        self, client: redis.Redis, policy: ThrottlePolicy | None = None, *, refresh_s: float = 1.0
    ) -> None:
        self._client = client
        self._policy = policy or ThrottlePolicy()
        self._refresh_s = refresh_s
        self._states: dict[str, ThrottleState] = {}
        self._read_at: dict[str, float] = {}

    def factor(self, trunk: str, now: float | None = None) -> float:
        """Multiply the trunk's ``max_cps`` by this (1 = full speed)."""
        now = time.time() if now is None else now
        state = self._states.get(trunk, ThrottleState())
        if now - self._read_at.get(trunk, float("-inf")) >= self._refresh_s:
            state = next_state(state, self.read_counts(trunk, now), now, self._policy)
            self._states[trunk] = state
            self._read_at[trunk] = now
        return state.factor

    def read_counts(self, trunk: str, now: float) -> list[CodeCounts]:
        """The last minute's buckets of final responses for ``trunk``, oldest first."""
        newest = int(now) // BUCKET_S
        buckets = list(range(newest - WINDOW_BUCKETS + 1, newest + 1))
        pipe = self._client.pipeline(transaction=False)
        for bucket in buckets:
            pipe.hmget(codes_key(trunk, bucket), ["total", "throttled"])
        counts = []
        for bucket, (total, throttled) in zip(buckets, pipe.execute(), strict=True):
            if total is not None or throttled is not None:
                counts.append(CodeCounts(bucket, int(total or 0), int(throttled or 0)))
        return counts
