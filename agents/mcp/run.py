"""`tradebus mcp`: the service (bus, stores, heartbeats) and the MCP server over stdio or HTTP.

Over stdio stdout is the protocol channel: logs go to stderr as everywhere else (JSON lines),
and nothing else may print to stdout. The server answers only once the service is connected,
so a tool never sees a half-open bus; a service that cannot start ends the command (exit 1,
or 2 for a refused configuration) with the reason on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from enum import StrEnum

from agents.mcp.service import McpService
from agents.mcp.settings import McpSettings
from infra.logging import configure_logging, get_logger
from infra.tokens import MissingTokens, Role
from protocol import HealthState

__all__ = ["Transport", "run_mcp"]

_log = get_logger(component="mcp")
_START_TIMEOUT = 60.0


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


async def _started(service: McpService, task: asyncio.Task[None]) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _START_TIMEOUT
    while service.health is HealthState.STARTING and not task.done():
        if loop.time() > deadline:
            print(f"tradebus mcp: not connected within {_START_TIMEOUT:.0f}s (RABBITMQ_URL, DATABASE_URL)", file=sys.stderr)
            return False
        await asyncio.sleep(0.05)
    if task.done() and not task.cancelled() and task.exception() is not None:
        # The reason on stderr, not a "task exception was never retrieved" at exit.
        print(f"tradebus mcp: could not start: {task.exception()!r}", file=sys.stderr)
        return False
    return not task.done() and not service.stopping


async def serve(settings: McpSettings, transport: Transport, *, read_only: bool = False, port: int | None = None) -> int:
    """Run until the client goes away (stdio), SIGTERM/SIGINT, or the service fails; the exit code."""
    from agents.mcp.server import build_server

    auth = None
    if transport is Transport.HTTP:
        from agents.mcp.http import http_auth

        try:
            auth = http_auth(settings)
        except MissingTokens as exc:
            print(f"tradebus mcp: {exc}", file=sys.stderr)
            return 2
    service = McpService(settings)
    running = asyncio.create_task(service.run(install_signal_handlers=False), name="mcp-service")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving: asyncio.Task[None] | None = None
    uv = None
    try:
        if not await _started(service, running):
            return service.exit_code or 1
        if transport is Transport.STDIO:
            server = build_server(service, default_role=Role.READ if read_only else Role.OPERATOR)
            serving = asyncio.create_task(server.run_stdio_async(), name="mcp-stdio")
        else:
            import uvicorn

            server = build_server(service, default_role=None, auth=auth)
            bind_port = settings.mcp_port if port is None else port
            app = server.streamable_http_app(host=settings.mcp_host)
            # log_config=None keeps the JSON log handler; uvicorn's own would reformat every line.
            uv = uvicorn.Server(uvicorn.Config(app, host=settings.mcp_host, port=bind_port, log_config=None,
                                               access_log=False, lifespan="on"))
            serving = asyncio.create_task(uv.serve(), name="mcp-http")
            _log.info("serving streamable HTTP", host=settings.mcp_host, port=bind_port, path="/mcp")
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        return service.exit_code
    finally:
        if serving is not None and not serving.done():
            if uv is not None:
                uv.should_exit = True
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(serving, 10)
            if not serving.done():
                serving.cancel()
                with contextlib.suppress(BaseException):
                    await serving
        service.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 30)


def run_mcp(transport: Transport, *, read_only: bool = False, port: int | None = None) -> int:
    settings = McpSettings()
    configure_logging("mcp", settings.log_level)
    return asyncio.run(serve(settings, transport, read_only=read_only, port=port))
