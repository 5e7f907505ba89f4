"""``dialer agent-demo``: run the reference AI agent (a Media Streams WebSocket server) in the foreground."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from sandbox.agent_demo import AgentScript, DemoAgent
from shared.errors import ConfigError


def register(app: typer.Typer) -> None:
    """Add ``agent-demo`` to the root ``dialer`` app."""

    @app.command("agent-demo")
    def agent_demo(
        port: Annotated[int, typer.Option(help="TCP port for ws://HOST:PORT/agent (0 = any free port).")] = 8765,
        host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
        token_env: Annotated[str | None, typer.Option(help="Require the bearer token held in this env variable.")]
        = None,
        tone: Annotated[float, typer.Option(help="Greet with a tone of this many Hz instead of speech.")] = 0.0,
        listen: Annotated[float, typer.Option(help="Seconds to listen (echoing) before reporting a result.")]
        = 6.0,
        transfer_to: Annotated[str, typer.Option(help="SIP URI to transfer to when the callee presses 0.")] = "",
    ) -> None:
        """Greet each callee, echo what they say, take 1/2/0 as interested/not/transfer, report and hang up."""
        token = None
        if token_env:
            token = os.environ.get(token_env)
            if not token:
                raise ConfigError(f"--token-env {token_env}: the environment variable is unset or empty")
        agent = DemoAgent(AgentScript(tone_hz=tone, listen_s=listen, transfer_to=transfer_to, token=token))

        async def main() -> None:
            ready = asyncio.Event()
            task = asyncio.create_task(agent.serve(host, port, ready=ready))
            await ready.wait()
            typer.echo(f"reference agent listening on ws://{host}:{agent.port}/agent"
                       f"{' (bearer token required)' if token else ''}", err=True)
            await task

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass
