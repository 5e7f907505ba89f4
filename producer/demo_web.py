"""The web pages during ``dialer demo``: ``dialer api``'s app on loopback, in a thread of the demo.

Signing in needs the API token. With ``DIALER_API_TOKEN`` set, that one;
otherwise a token made for this run and written to a file only its owner
can read, whose path is printed: the token itself never goes to the
terminal or a log.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from shared.embedded import free_port
from shared.settings import Settings


@contextlib.contextmanager
def demo_web(settings: Settings, database_url: str, data_dir: Path, port: int | None = None) -> Iterator[str]:
    """Serve the pages until the block ends; yields the line that tells a person where and how to sign in."""
    import uvicorn

    from producer.api import create_app

    if settings.api_token is not None:
        token = settings.api_token.get_secret_value()
        how = "sign in with your DIALER_API_TOKEN"
    else:
        token = secrets.token_urlsafe(24)
        token_file = data_dir / "web-token"
        token_file.unlink(missing_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        how = f"sign in with the token in {token_file}"
    port = port if port is not None else free_port()
    app = create_app(database_url, token, data_dir=data_dir, region=settings.default_region, pool_size=2)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="demo-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = (f"web page: http://127.0.0.1:{port}/ui/ ({how})" if server.started
            else f"web page: not served (could not listen on 127.0.0.1:{port}); the demo goes on without it")
    try:
        yield line
    finally:
        server.should_exit = True
        thread.join(10)
