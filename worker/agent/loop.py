"""The process's one asyncio thread for agent streams.

pjsua2's SIP thread must never wait on a socket, so every agent conversation
of the process runs as tasks on this loop, started lazily by the first
bridge. The loop thread only does I/O, JSON and a numpy table lookup per
20 ms frame; still, any Python thread competes with pjmedia's clock thread
for the GIL, so starting the loop lowers the interpreter's switch interval to
1 ms (measured in issue 14: at the default 5 ms a busy Python thread made 7%
of clock ticks late).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
SWITCH_INTERVAL_S = 0.001

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def agent_loop() -> asyncio.AbstractEventLoop:
    """The running agent loop, started on first use (a daemon thread named ``agent-loop``)."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="agent-loop", daemon=True).start()
            ready.wait()
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
            _loop = loop
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Run ``coro`` on the agent loop; returns at once (never blocks the caller)."""
    return asyncio.run_coroutine_threadsafe(coro, agent_loop())


def call_soon(callback: Any, *args: Any) -> None:
    """Run a plain callback on the agent loop, thread-safely."""
    agent_loop().call_soon_threadsafe(callback, *args)
