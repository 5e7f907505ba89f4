"""Kamailio as the test suite's real registrar and proxy, with a throwaway CA for its TLS listeners.

Why Kamailio: sipp plays one side of a dialog, but transport bugs (a
``;transport=tcp`` left on a Request-URI that a proxy re-targets, registrar
bindings that one process's REGISTER replaces for another, certificates
nobody checks) only show against a real proxy that keeps state. This starts
Debian's ``kamailio`` in the foreground (``-DD -E``) from a config generated
into a temporary folder, on 127.0.0.1 (or a test namespace's address) and free ports, with its own
runtime dir (``-Y``), pid file and ``ctl`` socket (for ``kamcmd ul.dump``).

What the generated proxy does (one trunk account, like a carrier's SBC):

* REGISTER: digest challenge (401) with real nonces (``auth`` module, the
  plaintext password checked by ``pv_www_authenticate``), then ``save`` in
  usrloc; bindings are keyed by ``+sip.instance`` when the contact has one.
* INVITE: 407 challenge (or, with ``authenticate_invites=False``, trust in
  the source address, as for an IP-authenticated trunk), then -- when
  ``require_binding`` -- 403 "Not Registered" unless the INVITE's Contact is
  one of the account's bindings,
  then ``rewritehostport`` to the gateway (URI parameters kept, as many real
  configs do; a ``sips:`` URI is ended here and becomes ``sip:``) and relay
  with record-routing.
* listeners: ``udp``, ``tcp`` and one ``tls`` listener per certificate asked
  for (:class:`TlsListener`), each with its own certificate.

Keys and certificates come from :class:`TestCa` at test time (``openssl``);
nothing secret is ever committed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.needs import unavailable
from tests.support.sipp import _die_with_parent as die_with_parent

HOST = "127.0.0.1"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
KAMCMD = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
_START_TIMEOUT_S = 20.0


def _run(*cmd: str, cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {done.stderr[-1000:]}")


@dataclass(frozen=True)
class Certificate:
    """A key and the certificate for it, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TestCa:
    """A throwaway certificate authority: its files live in ``folder`` and die with the test."""

    __test__ = False  # not a pytest test class

    folder: Path
    name: str

    @property
    def cert(self) -> Path:
        return self.folder / f"{self.name}-ca.pem"

    @property
    def key(self) -> Path:
        return self.folder / f"{self.name}-ca.key"

    @classmethod
    def create(cls, folder: Path, name: str) -> TestCa:
        """A new CA (2048-bit RSA, valid one day) named ``name``."""
        folder.mkdir(parents=True, exist_ok=True)
        ca = cls(folder, name)
        _run(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             f"/CN=sip-dialer test CA {name}", "-keyout", str(ca.key), "-out", str(ca.cert),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
        return ca

    def issue(self, name: str, *, ip: str | None = None, dns: str | None = None) -> Certificate:
        """A server certificate for ``ip`` and/or ``dns`` (subjectAltName), signed by this CA."""
        sans = ",".join(([f"IP:{ip}"] if ip else []) + ([f"DNS:{dns}"] if dns else []))
        key, csr, cert = (self.folder / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext = self.folder / f"{name}.ext"
        ext.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n", encoding="ascii")
        _run(OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={dns or ip}", "-keyout", str(key),
             "-out", str(csr), cwd=self.folder)
        _run(OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert), cwd=self.folder)
        return Certificate(cert, key)


@dataclass(frozen=True)
class TlsListener:
    """One ``tls:`` listener and the certificate it presents."""

    name: str
    certificate: Certificate
    port: int = 0


@dataclass
class Kamailio:
    """A running Kamailio and what a test needs to reach it."""

    workdir: Path
    udp_port: int
    tcp_port: int
    tls_ports: dict[str, int]
    process: subprocess.Popen[bytes]
    log: Path
    ctl: Path
    stopped: bool = field(default=False)
    host: str = HOST

    def address(self, transport: str = "udp", listener: str | None = None) -> str:
        """``HOST:PORT`` of the listener for ``transport`` (``tls``: the named listener)."""
        if transport == "tls":
            return f"{self.host}:{self.tls_ports[listener or next(iter(self.tls_ports))]}"
        return f"{self.host}:{self.udp_port if transport == 'udp' else self.tcp_port}"

    def kamcmd(self, *args: str) -> str:
        done = subprocess.run([KAMCMD, "-s", f"unix:{self.ctl}", *args], capture_output=True, text=True,
                              timeout=20, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kamcmd {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def contacts(self) -> list[str]:
        """The Contact URIs of every binding in usrloc (``ul.dump``)."""
        return [line.split(":", 1)[1].strip() for line in self.kamcmd("ul.dump").splitlines()
                if line.strip().startswith("Address:")]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        proc = self.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: only the children it forked
                proc.wait(timeout=10)


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _free_tcp_udp_port() -> int:
    """A port free for both TCP and UDP (Kamailio's ``udp`` and ``tcp`` listeners may share one)."""
    for _ in range(50):
        port = _free_port(socket.SOCK_STREAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")


_CONFIG = """\
#!KAMAILIO
debug={debug}
log_stderror=yes
memdbg=5
memlog=5
children=2
tcp_children=2
auto_aliases=no
enable_tls={enable_tls}
dns=no
rev_dns=no
use_dns_cache=off
tcp_connection_lifetime=3605
listen=udp:{host}:{udp}
listen=tcp:{host}:{tcp}
{tls_listen}
mpath="{modules}"

{load_tls}
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "auth.so"

{tls_params}
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("auth", "secret", "{nonce_secret}")
modparam("auth", "nonce_expire", 300)
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 0)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "min_expires", 1)
modparam("registrar", "gruu_enabled", 0)
modparam("rr", "enable_full_lr", 1)
modparam("rr", "enable_double_rr", 1)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK") && t_check_trans()) {{ t_relay(); }}
        exit;
    }}
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "OK"); exit; }}
    loose_route();  # our own Route (the client's outbound proxy) names this hop: consume it
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "{password}", "0") || $au != "{username}") {{
            www_challenge("$td", "0");
            exit;
        }}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (!is_method("INVITE")) {{ sl_send_reply("405", "Method Not Allowed"); exit; }}
    if ({authenticate_invites}) {{
        if (!pv_proxy_authenticate("$fd", "{password}", "0") || $au != "{username}") {{
            proxy_challenge("$fd", "0");
            exit;
        }}
        consume_credentials();
    }} else if ($si != "{host}") {{  # an IP-authenticated trunk: only our own address may call
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if ({require_binding}) {{
        $avp(match_contact) = $(ct{{nameaddr.uri}});
        if (!registered("location", "sip:$fU@$fd", 2)) {{
            xlog("L_NOTICE", "INVITE from unbound contact $ct\\n");
            sl_send_reply("403", "Not Registered");
            exit;
        }}
    }}
    xlog("L_NOTICE", "relaying INVITE $ru to the gateway\\n");
    record_route();
    if ($rz == "sips") {{  # the gateway speaks plain SIP over UDP: this SBC ends sips: here
        $ru = "sip:" + $rU + "@{gateway}";
    }} else {{
        rewritehostport("{gateway}");
    }}
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}
"""


def _tls_config(listeners: Sequence[TlsListener], host: str = HOST) -> str:
    sections = []
    for listener in listeners:
        sections.append(textwrap.dedent(f"""\
            [server:{host}:{listener.port}]
            method = TLSv1.2+
            verify_certificate = no
            require_certificate = no
            certificate = {listener.certificate.cert}
            private_key = {listener.certificate.key}
            """))
    if listeners:  # connections that match no listener's section (none here) still need a certificate
        first = listeners[0].certificate
        sections.append(f"[server:default]\nmethod = TLSv1.2+\ncertificate = {first.cert}\n"
                        f"private_key = {first.key}\n")
    sections.append("[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n")
    return "\n".join(sections)


def start_kamailio(
    workdir: Path,
    *,
    gateway: str,
    username: str,
    password: str,
    tls: Sequence[TlsListener] = (),
    require_binding: bool = True,
    authenticate_invites: bool = True,
    debug: int = 2,
    host: str = HOST,
    command_prefix: Sequence[str] = (),
) -> Kamailio:
    """Start Kamailio in the foreground on free ports; returns once every listener answers.

    ``host`` is the address it listens on (loopback by default); ``command_prefix``
    runs it through another command, e.g. ``ip netns exec NAME`` for a Kamailio
    on a test host of its own (its ``ctl`` socket is a file, reachable from here).
    """
    if not os.path.exists(KAMAILIO) or not (MODULES / "tls.so").exists():
        missing = "kamailio is not installed (Debian packages kamailio, kamailio-tls-modules)"
        unavailable(missing)
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / "run"
    run_dir.mkdir(exist_ok=True)
    last = ""
    for attempt in range(3):  # a free port may be taken by someone else before Kamailio binds it
        port = _free_tcp_udp_port()
        listeners = [TlsListener(t.name, t.certificate, _free_port(socket.SOCK_STREAM)) for t in tls]
        tls_cfg = workdir / "tls.cfg"
        tls_cfg.write_text(_tls_config(listeners, host), encoding="ascii")
        ctl = run_dir / "ctl.sock"
        config = workdir / "kamailio.cfg"
        config.write_text(_CONFIG.format(
            debug=debug, host=host, udp=port, tcp=port, modules=MODULES, tls_cfg=tls_cfg, ctl=ctl,
            enable_tls="yes" if listeners else "no",
            load_tls='loadmodule "tls.so"' if listeners else "",
            tls_params=f'modparam("tls", "config", "{tls_cfg}")' if listeners else "",
            tls_listen="\n".join(f"listen=tls:{host}:{t.port}" for t in listeners),
            nonce_secret=os.urandom(16).hex(), password=password, username=username, gateway=gateway,
            require_binding="1" if require_binding else "0",
            authenticate_invites="1" if authenticate_invites else "0",
        ), encoding="ascii")
        log = workdir / f"kamailio-{attempt}.log"
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                [*command_prefix, KAMAILIO, "-f", str(config), "-DD", "-E", "-Y", str(run_dir),
                 "-P", str(run_dir / "kamailio.pid"), "-m", "64", "-M", "8", "-w", str(run_dir)],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=workdir, start_new_session=True,
                preexec_fn=die_with_parent,  # only prctl runs there: Kamailio never outlives the tests
            )
        kam = Kamailio(workdir, port, port, {t.name: t.port for t in listeners}, process, log, ctl, host=host)
        if _wait_ready(kam, [port, *(t.port for t in listeners)]):
            return kam
        kam.stop()
        last = kam.log_text()[-3000:]
    raise RuntimeError(f"kamailio did not start: {last}")


def _wait_ready(kam: Kamailio, tcp_ports: Sequence[int]) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while kam.process.poll() is None and time.monotonic() < deadline:
        if kam.ctl.exists() and all(_listening(kam.host, port) for port in tcp_ports):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                kam.kamcmd("core.version")  # the ctl socket answers: start-up is over and it is alive
                return kam.process.poll() is None
        time.sleep(0.05)  # polling a foreign process's sockets: there is no event to wait on
    return False


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


KamailioFactory = Callable[..., Kamailio]


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[KamailioFactory]:
    """Factory: ``kamailio(gateway=..., username=..., password=..., tls=[...])``; every one stopped at teardown."""
    started: list[Kamailio] = []

    def start(**kwargs: object) -> Kamailio:
        kam = start_kamailio(tmp_path / f"kamailio{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(kam)
        return kam

    yield start
    for kam in started:
        with contextlib.suppress(Exception):
            kam.stop()
