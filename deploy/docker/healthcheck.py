#!/usr/bin/env python3
"""Container health probe: ``dialer-healthcheck http URL`` or ``dialer-healthcheck sip HOST:PORT``.

Why a script: the app image is python:3.11-slim, which has no curl or wget, and a
SIP server can only be asked whether it is alive in SIP. ``http`` passes on a 2xx
answer (the /metrics endpoint every dialer process serves); ``sip`` sends one
OPTIONS over UDP and passes on any SIP response, since RFC 3261 servers must answer
OPTIONS, even with 405. Exit status 0 = healthy, 1 = not; one line says why.
Standard library only: it runs in the image before anything else works.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request
import uuid


def check_http(url: str, timeout: float) -> str | None:
    """None when URL answers 2xx, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def options_request(host: str, port: int, local_port: int) -> bytes:
    """A minimal OPTIONS request; the Via names the probe's own port so the answer comes back."""
    branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
    lines = [
        f"OPTIONS sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:healthcheck@127.0.0.1>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:{host}:{port}>",
        f"Call-ID: {uuid.uuid4().hex}@healthcheck",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def check_sip(target: str, timeout: float) -> str | None:
    """None when HOST:PORT answers an OPTIONS over UDP with any SIP response."""
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        return f"{target}: expected HOST:PORT"
    port = int(port_text)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            sock.send(options_request(host, port, sock.getsockname()[1]))
            answer = sock.recv(65535)
        except OSError as exc:
            return f"sip {target}: {exc or 'no answer'}"
    if not answer.startswith(b"SIP/2.0 "):
        return f"sip {target}: answer is not a SIP response"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dialer-healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["http", "sip"])
    parser.add_argument("target", help="URL for http, HOST:PORT for sip")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    args = parser.parse_args(argv)
    check = check_http if args.kind == "http" else check_sip
    problem = check(args.target, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
