"""The trunk password never leaves the process that uses it: not in logs, metrics, CDRs, messages or output.

A small campaign runs through the whole fleet against sipp's digest-auth
carrier with a known fake password; afterwards every place a secret could
leak to is searched for it: each process's log, sipp's own files, the
/metrics pages, every row of every table, every key in Redis (kombu keeps
messages in lists and hashes: dumped while messages wait and again at the
end) and the output of the ``dialer`` commands an operator would run,
including a failing one whose database URL carries the same password.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.faults.conftest import RigFactory
from tests.faults.rig import PASSWORD, FaultRig, fictional_numbers, start_dispatchers
from tests.support.fleet import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

TABLES = ("trunks", "campaigns", "uploads", "upload_rejects", "dnc", "dial_jobs", "call_attempts")
JOBS = 12


def dump_redis(url: str) -> str:
    """Every key and value, whatever its type, as text."""
    client = redis.Redis.from_url(url)
    lines = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            value: object = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        lines.append(f"{key!r} {kind} {value!r}")
    client.close()
    return "\n".join(lines)


def dump_tables(rig: FaultRig) -> str:
    return "\n".join(json.dumps(row[0], default=str) for table in TABLES
                     for row in rig.query(f"SELECT row_to_json(t) FROM {table} t"))


def scrape(port: int | None) -> str:
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_password_appears_nowhere(rig_factory: RigFactory, tmp_path: Path) -> None:
    """Pins: the password is used (REGISTER and INVITE digests verify at sipp) yet found in no output at all."""
    rig = rig_factory(scenario="carrier")
    fleet = rig.fleet
    leads = tmp_path / "leads.csv"
    leads.write_text("phone,name\n" + "".join(f"{n},lead\n" for n in fictional_numbers(JOBS)), encoding="utf-8")
    outputs = [
        fleet.run("campaign", "create", "secret", "--trunk", "default", "--ring-timeout", "3s", "--cps", "20",
                  "--max-concurrent", "8"),
        fleet.run("upload", "secret", str(leads)),
        fleet.run("campaign", "start", "secret"),
    ]
    assert all(out.returncode == 0 for out in outputs), [o.output for o in outputs]
    [dispatcher] = start_dispatchers(rig)
    client = redis.Redis.from_url(rig.redis.url())
    wait_until(lambda: client.llen("dial.default") > 0, 60, "dial messages waiting in Redis")
    client.close()
    dumps = [dump_redis(rig.redis.url())]  # messages still in the queue, nobody consuming yet

    workers = fleet.start_worker(2, name="workers")
    campaign_id = rig.query("SELECT id FROM campaigns WHERE name = 'secret'")[0][0]
    rig.wait_settled(campaign_id, 120, statuses=("completed",))
    assert rig.query("SELECT count(*) FROM call_attempts WHERE outcome = 'answered'")[0][0] == JOBS
    dumps += [dump_redis(rig.redis.url()), dump_tables(rig), scrape(workers.metrics_port),
              scrape(dispatcher.metrics_port)]
    outputs += [
        fleet.run("campaign", "status", "secret", "--json"),
        fleet.run("campaign", "list"),
        fleet.run("call", "+8613900000099", "--ring-timeout", "3", "--json"),
        fleet.run("campaign", "list", env={
            "DIALER_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{rig.pg.port}/no_such_db"}),
    ]
    assert json.loads(outputs[-2].output.strip().splitlines()[-1])["outcome"] == "answered"
    assert outputs[-1].returncode != 0, "the command with a wrong database failed, as it should"
    fleet.stop(grace_s=20.0)  # flush every log before reading it

    registers = [m for m in rig.peer.messages() if m.status == 200 and m.cseq_method == "REGISTER"]
    assert registers, "the password was used: sipp accepted digest-authenticated REGISTERs"
    files = sorted(p for p in rig.workdir.rglob("*") if p.is_file() and p.suffix in {".log", ".csv", ".txt"})
    assert any(p.name == "workers.log" for p in files)
    leaks = [str(p) for p in files if PASSWORD in p.read_text(errors="replace")]
    leaks += [f"dump {i}" for i, text in enumerate(dumps) if PASSWORD in text]
    leaks += [f"dialer {' '.join(o.args)}" for o in outputs if PASSWORD in o.output]
    print(f"    searched {len(files)} files, {len(dumps)} dumps, {len(outputs)} command outputs")
    assert leaks == []
