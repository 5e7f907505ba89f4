"""A minimal reverse proxy for the tests: serves an upstream under a path prefix, as nginx would.

``/dialer/ui/...`` is forwarded to the upstream as ``/ui/...`` with
``X-Forwarded-Prefix: /dialer``; anything outside the prefix is a 404, so a
page that builds one link without the prefix breaks visibly. Responses pass
through untouched (no Location rewriting): the app must build them right.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                        "proxy-authorization", "proxy-authenticate"})


def _handler(upstream_port: int, prefix: str, seen: list[str], tell: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: pytest keeps the output clean
            pass

        def _forward(self) -> None:
            seen.append(f"{self.command} {self.path}")
            if not (self.path == prefix or self.path.startswith(prefix + "/")):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if tell:
                headers["X-Forwarded-Prefix"] = prefix
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            try:
                upstream.request(self.command, self.path[len(prefix):] or "/", body=body, headers=headers)
                reply = upstream.getresponse()
                data = reply.read()
            finally:
                upstream.close()
            self.send_response(reply.status, reply.reason)
            for name, value in reply.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_HEAD = _forward

    return Handler


@contextmanager
def prefix_proxy(upstream_port: int, prefix: str = "/dialer", *, tell: bool = True) -> Iterator[tuple[str, list[str]]]:
    """Yield (base URL with the prefix, list of "METHOD path" the proxy received).

    ``tell=False``: no X-Forwarded-Prefix; the upstream must know its prefix (``dialer api --root-path``).
    """
    seen: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream_port, prefix, seen, tell))
    thread = threading.Thread(target=server.serve_forever, name="prefix-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{prefix}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
