"""A test host of our own: a network namespace joined to this one by a veth pair.

Loopback hides what a real PBX on another host shows at once (a socket bound
to 127.0.0.1 cannot send to it; the addresses in Via, Contact and SDP must be
ones the PBX can answer). :func:`netns_host` creates ``ip netns add <unique>``,
a veth pair, ``<subnet>.1/24`` on our side and ``<subnet>.2/24`` inside, and
always deletes the namespace (which takes the veth pair with it) at the end.
Addresses come from 198.18.0.0/15, the range reserved for network tests; each
test module picks its own /24 so parallel runs of other tests do not clash.

:func:`start_sipp_in` runs one of ``tests/sipp/*.xml`` inside the namespace on
the namespace's own address, with the same trace files as
:mod:`tests.support.sipp`, and :func:`capture_in` runs tshark there.

Where namespaces cannot be made (no root, no iproute2) the fixture skips with
the reason, except under ``CI=true``, where it fails: CI must run these tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.needs import need_program, unavailable
from tests.support.sipp import DEFAULT_KEYS, SCENARIO_DIR, SippPeer, sipp_command

IP = shutil.which("ip") or "/usr/sbin/ip"


@dataclass(frozen=True)
class NetnsHost:
    """A namespace reachable from here at ``address``; we are ``peer_address`` as it sees us."""


    name: str
    address: str
    peer_address: str

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([IP, "netns", "exec", self.name, *args], capture_output=True, text=True,
                              timeout=30, check=False, **kwargs)  # type: ignore[call-overload]

    def command(self, args: Sequence[str]) -> list[str]:
        return [IP, "netns", "exec", self.name, *args]

    def udp_bound(self, port: int) -> bool:
        done = self.run("ss", "-Hlun", f"sport = :{port}")
        return bool(done.stdout.strip())


def _ip(*args: str) -> None:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _unavailable(reason: str) -> None:
    unavailable(f"network namespaces are unavailable here: {reason}")


def _drop_stale(prefix: str) -> None:
    """Namespaces of ours left by a test process that was killed (its pid is gone): delete them."""
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, timeout=30, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-")
        if name.startswith(f"{prefix}-") and len(parts) == 3 and parts[1].isdigit() and not Path(
                f"/proc/{parts[1]}").exists():
            subprocess.run([IP, "netns", "del", name], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def netns_host(subnet: str, prefix: str = "sdt") -> Iterator[NetnsHost]:
    """A namespace at ``<subnet>.2`` joined to us (``<subnet>.1``); deleted on exit, whatever happened."""
    if not os.path.exists(IP):
        _unavailable("iproute2's `ip` is not installed")
    _drop_stale(prefix)
    tag = uuid.uuid4().hex[:8]
    name, ours, theirs = f"{prefix}-{os.getpid()}-{tag}", f"vr{tag}", f"vn{tag}"
    probe = subprocess.run([IP, "netns", "add", name], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        _unavailable(probe.stderr.strip() or "`ip netns add` failed")
    try:
        _ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
        _ip("link", "set", theirs, "netns", name)
        _ip("addr", "add", f"{subnet}.1/24", "dev", ours)
        _ip("link", "set", ours, "up")
        _ip("-n", name, "addr", "add", f"{subnet}.2/24", "dev", theirs)
        _ip("-n", name, "link", "set", theirs, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield NetnsHost(name, f"{subnet}.2", f"{subnet}.1")
    finally:
        subprocess.run([IP, "link", "del", ours], capture_output=True, timeout=30, check=False)
        subprocess.run([IP, "netns", "del", name], capture_output=True, timeout=30, check=False)


def start_sipp_in(
    host: NetnsHost, scenario: str, workdir: Path, *, port: int = 5060, keys: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (), timeout_s: float = 120.0,
) -> SippPeer:
    """sipp's ``scenario`` listening on ``host.address:port`` inside the namespace; returns once it is bound."""
    all_keys = {**DEFAULT_KEYS, **(keys or {})}
    workdir.mkdir(parents=True, exist_ok=True)
    peer = SippPeer(scenario, port, "udp", workdir, all_keys)
    peer.host = host.address
    cmd = sipp_command(SCENARIO_DIR / f"{scenario}.xml", port, transport="udp", peer=peer, keys=all_keys,
                       pause_ms=None, timeout_s=timeout_s, extra_args=extra_args, host=host.address)
    with open(peer.stderr_log, "wb") as stderr:
        peer.process = subprocess.Popen(host.command(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=stderr, cwd=workdir)
    deadline = time.monotonic() + 10
    while peer.process.poll() is None and time.monotonic() < deadline:
        if host.udp_bound(port):
            return peer
        time.sleep(0.05)  # polling another process's bind: there is no event to wait on
    peer.stop()
    raise RuntimeError(f"sipp {scenario} did not start in {host.name}: {peer.stderr_log.read_text()[-2000:]}")


@contextlib.contextmanager
def capture_in(host: NetnsHost, pcap: Path, bpf: str = "udp") -> Iterator[Path]:
    """tshark on every interface of the namespace, writing ``pcap``; stopped (and flushed) on exit."""
    tshark = need_program("tshark", "Debian package tshark")
    pcap.parent.mkdir(parents=True, exist_ok=True)
    log = pcap.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(host.command([tshark, "-i", "any", "-f", bpf, "-w", str(pcap), "-q"]),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while "Capturing on" not in log.read_text(errors="replace") and proc.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"tshark did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)  # tshark says when it captures; no event to wait on
        yield pcap
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def rtp_packets(pcap: Path, src: str, dst: str) -> int:
    """UDP packets decoded as RTP from ``src`` to ``dst`` in ``pcap`` (any port: decode as RTP heuristically)."""
    done = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", "rtp.heuristic_rtp:TRUE", "-Y", f"rtp && ip.src=={src} && ip.dst=={dst}",
         "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return len([line for line in done.stdout.splitlines() if line.strip()])
