"""Upload throughput and memory: `ingest_file` on a generated list, beside plain COPYs of the same rows.

Prints rows/s of the ingest (end to end: prescan, parse, validate, stage, insert, report) and its
peak RSS, measured in a child process of its own, beside two COPYs measured in the same run:

* ``bare COPY``: the CSV streamed into an unindexed table of text columns (the wire and parser limit);
* ``COPY into dial_jobs``: pre-normalised rows straight into the real table, with its foreign keys and
  six indexes (the limit the schema sets for any loader, before conflict handling).

The list is fictional (+86 139 00xx xxxx, shuffled), with about 1% invalid rows and 1% duplicates,
and Chinese names in a metadata column. A fresh database is created and dropped on 127.0.0.1:5432
(or ``--admin-url``; an embedded pgserver when neither answers).

    python bench/bench_upload.py [--rows 1000000] [--admin-url postgresql://...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402  # after the path set-up above

from bench.services import fresh_database  # noqa: E402

SURNAMES = "张王李赵刘陈杨黄周吴"


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """Write the list: name, phone, customer id; shuffled, with some bad and repeated numbers."""
    rnd = random.Random(seed)
    order = list(range(rows))
    rnd.shuffle(order)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("姓名,手机号,客户ID\n")
        for line, i in enumerate(order):
            if line % 100 == 99:
                phone = f"12{i:03d}"  # invalid: too short
            elif line % 97 == 96:
                phone = f"139{order[line // 2]:08d}"  # a repeat of an earlier row
            else:
                phone = f"139{i:08d}"
            out.write(f"{SURNAMES[i % 10]}{i % 1000},{phone},C{i:07d}\n")


def bare_copy(url: str, path: Path) -> float:
    """Seconds to COPY the CSV as it is into an unindexed table."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_bare (name text, phone text, customer_id text)")
        started = time.perf_counter()
        with conn.cursor().copy("COPY bench_bare FROM STDIN (FORMAT csv, HEADER true)") as copy, \
                path.open("rb") as data:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_bare")
        conn.commit()
    return elapsed


def dial_jobs_copy(url: str, path: Path) -> float:
    """Seconds to COPY unique, already-normalised rows straight into dial_jobs (then removed)."""
    prepared = path.with_suffix(".copy")
    with psycopg.connect(url) as conn:
        row = conn.execute("INSERT INTO campaigns (name, trunk) VALUES ('bench-floor', 't') RETURNING id").fetchone()
        assert row is not None
        seen: set[str] = set()
        with path.open(encoding="utf-8") as data, prepared.open("w", encoding="utf-8") as out:
            next(data)
            for text in data:
                name, phone, customer = text.rstrip("\n").split(",")
                if len(phone) == 11 and phone not in seen:
                    seen.add(phone)
                    meta = json.dumps({"姓名": name, "客户ID": customer}, ensure_ascii=False)
                    out.write(f"{row[0]}\t+86{phone}\t{meta}\n")
        del seen
        started = time.perf_counter()
        with conn.cursor().copy("COPY dial_jobs (campaign_id, e164, metadata) FROM STDIN") as copy, \
                prepared.open("rb") as data:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM dial_jobs WHERE campaign_id = %s", (row[0],))
        conn.commit()
    prepared.unlink()
    return elapsed


def child(url: str, path: str) -> None:
    """Run one ingest in this process and print its summary and this process's peak RSS."""
    from producer.campaigns import CampaignSpec, create_campaign
    from producer.upload import ingest_file

    with psycopg.connect(url, autocommit=True) as conn:
        create_campaign(conn, CampaignSpec("bench", "t"))
        started = time.perf_counter()
        summary = ingest_file(conn, "bench", path, data_dir=Path(path).parent)
        elapsed = time.perf_counter() - started
    print(json.dumps({**summary.to_json(), "wall_s": elapsed, "peak_rss_mb": peak_rss_kb() / 1024}))


def peak_rss_kb() -> int:
    """This process's own peak RSS. Not ru_maxrss: after fork+exec that still holds the parent's peak."""
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated list")
    parser.add_argument("--admin-url", default=os.environ.get("DIALER_TEST_DATABASE_URL"),
                        help="a Postgres URL allowed to create databases")
    parser.add_argument("--child", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        with fresh_database(Path(tempfile.mkdtemp()), args.admin_url) as url:
            bare_s = bare_copy(url, path)
            floor_s = dial_jobs_copy(url, path)
            result = subprocess.run(
                [sys.executable, __file__, "--child", url, str(path)],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )
        summary = json.loads(result.stdout)
    rows = summary["rows"]
    ingest_rate, bare_rate, floor_rate = rows / summary["wall_s"], args.rows / bare_s, args.rows / floor_s
    print(f"rows {rows:,} ({size_mb:.1f} MB): accepted {summary['accepted']:,}, duplicates "
          f"{summary['duplicates']:,}, rejected {summary['rejected']:,}")
    print(f"bare COPY            {bare_rate:>10,.0f} rows/s")
    print(f"COPY into dial_jobs  {floor_rate:>10,.0f} rows/s   (the schema's limit: FKs + 6 indexes)")
    print(f"ingest_file          {ingest_rate:>10,.0f} rows/s   = {ingest_rate / bare_rate:.0%} of bare COPY, "
          f"{ingest_rate / floor_rate:.0%} of COPY into dial_jobs")
    print(f"ingest peak RSS      {summary['peak_rss_mb']:>10.0f} MB  (target < 200 MB)")


if __name__ == "__main__":
    main()
