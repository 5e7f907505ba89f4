"""Which local address the SIP and RTP sockets bind to and advertise, and which RTP ports they use.

Why this exists: a socket bound to 127.0.0.1 cannot send to another host
(pjsua reports 503), and one bound to 0.0.0.0 advertises the default
interface's address in Via, Contact and SDP, which a PBX on another network
cannot answer. What works is the address of the interface the kernel routes
the registrar through; a UDP socket ``connect``-ed to the registrar learns it
from ``getsockname`` without sending a packet. With an outbound proxy the
first hop is that proxy, not the registrar (a trunk that does not REGISTER
may name a registrar no resolver knows): "the registrar" below means the
first hop, ``SipAccountConfig.first_hop``.

The rules (:func:`plan_addresses`):

* nothing set: bind to, and advertise, the interface that routes to the registrar;
* a bind address set: bind there and advertise it, or the public address if set;
* the wildcard ``0.0.0.0``: bind to every interface, advertise the public
  address if set, else the interface that routes to the registrar;
* a public address (NAT: Docker's bridge network, a cloud VM) only changes
  what is advertised, never where the sockets bind.

RTP ports: one host may run many worker processes on one range (a firewall
opens one range), so :func:`rtp_slice` gives each process its own part of it.
pjsua binds each call's RTP/RTCP pair at the next even port of that part and,
when a port is taken anyway (another program, a second ``dialer worker`` on
the host), moves on to the next pair, so a shared range degrades to retries,
never to a failed call.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import ConfigError

WILDCARD = "0.0.0.0"
# Each live call needs an RTP and an RTCP port; pjsua keeps a closed pair briefly, so give it room.
PORTS_PER_CALL = 4

Router = Callable[[str, int], str]


def route_source(host: str, port: int) -> str:
    """The local IPv4 address the kernel would send from to reach ``host:port`` (no packet is sent)."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ConfigError(f"registrar host {host!r} does not resolve ({exc.strerror}): check DIALER_SIP_REGISTRAR"
                          ) from None
    target = infos[0][4]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(target)
        except OSError as exc:
            raise ConfigError(f"no route from this host to registrar {host}:{port} ({exc.strerror})") from None
        return str(sock.getsockname()[0])


@dataclass(frozen=True)
class NetworkSettings:
    """What a deployment said about addresses and ports; None and 0 mean "work it out"."""

    bind_address: str | None = None
    public_address: str | None = None
    rtp_port_min: int = 0
    rtp_port_max: int = 0


@dataclass(frozen=True)
class Addresses:
    """Where the sockets bind and what address, if not the bound one, goes into Via, Contact and SDP."""

    bind: str
    advertise: str | None


def split_hostport(hostport: str, default_port: int = 5060) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` or ``host`` -> (host, port)."""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = hostport.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return hostport, default_port


def plan_addresses(registrar: str, network: NetworkSettings, router: Router = route_source) -> Addresses:
    """Apply the module's rules; ``router`` is called only when the registrar's route matters."""
    bind = network.bind_address
    if bind and bind != WILDCARD:
        return Addresses(bind, network.public_address)
    host, port = split_hostport(registrar)
    if bind == WILDCARD:
        return Addresses(WILDCARD, network.public_address or router(host, port))
    return Addresses(router(host, port), network.public_address)


def rtp_slice(network: NetworkSettings, index: int, processes: int, calls_per_process: int) -> tuple[int, int]:
    """``(port, portRange)`` as pjsua takes them for worker process ``index`` of ``processes``; (0, 0) unset.

    The slice starts on an even port (RTP even, RTCP the odd one above it).
    A range too small to give every process room for its calls is a
    ConfigError naming DIALER_RTP_PORT_RANGE.
    """
    if not network.rtp_port_min:
        return 0, 0
    if not 0 <= index < max(1, processes):
        raise ValueError(f"process index {index} outside 0..{processes - 1}")
    low = network.rtp_port_min + network.rtp_port_min % 2
    total = network.rtp_port_max + 1 - low
    size = (total // max(1, processes)) // 2 * 2
    needed = calls_per_process * PORTS_PER_CALL
    if size < needed:
        raise ConfigError(
            f"DIALER_RTP_PORT_RANGE: {network.rtp_port_min}-{network.rtp_port_max} gives each of {processes} "
            f"worker processes {max(0, size)} ports; each needs {needed} ({calls_per_process} calls x "
            f"{PORTS_PER_CALL}): widen the range or run fewer processes per host"
        )
    # pjsua's portRange is inclusive of its last pair (measured: port 31000, range 8 used 31000..31009),
    # so it gets two ports fewer than the slice holds.
    return low + index * size, size - 2
