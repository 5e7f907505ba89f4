"""The demo's AI agent: the reference Media Streams agent on its own thread and loop, on a free loopback port.

``dialer demo`` hands one callee (the one that presses 2) to it through the
flow's ``stream`` step. Its script is fixed so the story the demo prints is
the same every run: a tone greeting (no espeak-ng run to wait for), three
seconds of listening with no key expected, then ``interested`` and hangup.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from sandbox.agent_demo import AgentScript, DemoAgent

DEMO_SCRIPT = AgentScript(tone_hz=440.0, greeting_s=1.5, echo=True, listen_s=3.0, disposition="interested")


@contextlib.contextmanager
def demo_agent(script: AgentScript = DEMO_SCRIPT) -> Iterator[DemoAgent]:
    """Serve the reference agent until the block ends; ``agent.port`` is its port. Stopped and joined on exit."""
    agent = DemoAgent(script)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    failure: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(agent.serve(port=0, ready=started, stop=stop))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        ready.set()  # started, or failed: either way the caller stops waiting
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the caller below, not lost on a thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="demo-agent", daemon=True)
    thread.start()
    if not ready.wait(30) or failure or not agent.port:
        raise RuntimeError(f"the demo's AI agent did not start: {failure[0] if failure else 'no port after 30 s'}")
    try:
        yield agent
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
