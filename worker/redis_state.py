"""Small facts the worker fleet shares through Redis: the variant each trunk accepts, and its response mix.

Both are hints, not state: losing them (a Redis restart) costs one extra 404
or a slower reaction to throttling, never a wrong call.
"""

from __future__ import annotations

import time

import redis

from shared.numbers import VariantKind
from shared.outcomes import SipStatus

VARIANT_TTL_S = 7 * 24 * 3600
CODES_BUCKET_S = 10
CODES_TTL_S = 120
THROTTLE_CODES = frozenset({SipStatus.SERVICE_UNAVAILABLE, SipStatus.BUSY_HERE})


def _variant_key(trunk: str, country_code: int) -> str:
    return f"dialer:variant:{trunk}:{country_code}"


def preferred_variant(client: redis.Redis, trunk: str, country_code: int) -> VariantKind | None:
    """The form of number this trunk last accepted for this country, if remembered."""
    try:
        raw = client.get(_variant_key(trunk, country_code))
    except redis.RedisError:
        return None
    if not isinstance(raw, bytes):
        return None
    try:
        return VariantKind(raw.decode())
    except ValueError:
        return None


def remember_variant(client: redis.Redis, trunk: str, country_code: int, kind: VariantKind) -> None:
    try:
        client.set(_variant_key(trunk, country_code), kind.value, ex=VARIANT_TTL_S)
    except redis.RedisError:
        pass  # a hint only: the next call tries the trunk's order from the top


def count_final_response(client: redis.Redis, trunk: str, status: int | None, now: float | None = None) -> None:
    """Feed the dispatcher's throttling detector: totals and 503/486 per 10-second bucket."""
    bucket = int((now if now is not None else time.time()) // CODES_BUCKET_S)
    key = f"dialer:codes:{trunk}:{bucket}"
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(key, "total", 1)
        if status in THROTTLE_CODES:
            pipe.hincrby(key, "throttled", 1)
        pipe.expire(key, CODES_TTL_S)
        pipe.execute()
    except redis.RedisError:
        pass
