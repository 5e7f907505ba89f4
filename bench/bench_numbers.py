"""Normalisations per second: fast path, phonenumbers alone, and a realistic upload mix.

Uploads normalise up to a million rows, so this prints the figures that size an
upload worker. Every number is generated and fictional (139 0000 xxxx style).

    python bench/bench_numbers.py [--count 200000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.errors import InvalidNumber
from shared.numbers import NumberType, normalise, normalise_slow
from shared.numbers_fast import fast_parse
from shared.numbers_text import clean

FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")


def _mobile_prefixes() -> list[str]:
    """The 1xx prefixes phonenumbers accepts as CN mobiles, so the plain set is all valid."""
    prefixes = []
    for prefix in (f"1{second}{third}" for second in range(3, 10) for third in range(10)):
        try:
            if normalise_slow(f"{prefix}00001111").number_type is NumberType.MOBILE:
                prefixes.append(prefix)
        except InvalidNumber:
            pass
    return prefixes


MOBILE_PREFIXES = _mobile_prefixes()


def mobile(rnd: random.Random) -> str:
    """A fictional CN mobile: 1xx 0000 xxxx."""
    return f"{rnd.choice(MOBILE_PREFIXES)}0000{rnd.randint(0, 9999):04d}"


def landline(rnd: random.Random) -> str:
    """A fictional CN landline in national form: 0 + area code + 0000 xxxx."""
    area = rnd.choice(["10", "20", "21", "22", "23", "24", "25", "27", "28", "29", "311", "351", "431", "571"])
    return f"0{area}0000{rnd.randint(0, 9999):04d}"


# (weight, how a row is written): the mix an upload of CRM exports tends to have.
MIX: Sequence[tuple[int, Callable[[random.Random], str]]] = (
    (55, mobile),
    (8, lambda r: f"{(m := mobile(r))[:3]} {m[3:7]} {m[7:]}"),
    (5, lambda r: f"{(m := mobile(r))[:3]}-{m[3:7]}-{m[7:]}"),
    (5, lambda r: f"+86{mobile(r)}"),
    (4, lambda r: f"86{mobile(r)}"),
    (2, lambda r: f"0086 {mobile(r)}"),
    (8, landline),
    (3, lambda r: f"({(n := landline(r))[:3]}) {n[3:]}"),
    (2, lambda r: mobile(r).translate(FULL_WIDTH)),
    (1, lambda r: f"tel:+86-{mobile(r)}"),
    (3, lambda r: mobile(r)[: r.randint(5, 10)]),  # cut short
    (2, lambda r: mobile(r) + str(r.randint(0, 9))),  # one digit too many
    (1, lambda r: f"{mobile(r)[:7]}abcd"),
    (1, lambda r: ""),
)


def generate(count: int, seed: int, mix: Sequence[tuple[int, Callable[[random.Random], str]]]) -> list[str]:
    rnd = random.Random(seed)
    makers = [make for _, make in mix]
    weights = [weight for weight, _ in mix]
    return [rnd.choices(makers, weights)[0](rnd) for _ in range(count)]


def rate(parse: Callable[[str], object], rows: list[str]) -> tuple[float, int]:
    """Rows per second through ``parse`` and how many it rejected."""
    rejected = 0
    started = time.perf_counter()
    for row in rows:
        try:
            parse(row)
        except InvalidNumber:
            rejected += 1
    return len(rows) / (time.perf_counter() - started), rejected


def fast_share(rows: list[str]) -> float:
    """Share of rows the fast path answers without phonenumbers (untimed)."""
    hits = 0
    for row in rows:
        try:
            hits += fast_parse(clean(row), "CN") is not None
        except InvalidNumber:
            pass
    return hits / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    plain = generate(args.count, args.seed, ((1, mobile),))
    mixed = generate(args.count, args.seed, MIX)
    normalise(plain[0])  # compile the CN plan outside the timings
    print(f"{args.count:,} generated fictional numbers each; figures are normalisations per second")
    for label, parse, rows in (
        ("fast path, plain CN mobiles", normalise, plain),
        ("phonenumbers only, plain CN mobiles", normalise_slow, plain),
        ("normalise, realistic mix", normalise, mixed),
        ("phonenumbers only, realistic mix", normalise_slow, mixed),
    ):
        per_second, rejected = rate(parse, rows)
        print(f"  {label:<38} {per_second:>10,.0f}/s   rejected {rejected / len(rows):6.1%}")
    print(f"  fast-path share of the realistic mix: {fast_share(mixed):.1%} (the rest falls back)")


if __name__ == "__main__":
    main()
