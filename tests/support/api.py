"""The console API for tests: settings on a test's own stores, the app in process (ASGI) or
served by a real uvicorn on a free port (for the stream), and the two tokens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from agents.api import create_app
from agents.api.app import Services
from agents.api.settings import ApiSettings

READ_TOKEN = "read-token-7f3a9c1e55d2"
OPERATOR_TOKEN = "operator-token-b81d04e6a9f7"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def api_settings(rabbitmq_url: str, postgres_url: str, influx: tuple[str, str], exchange: str, **extra: Any) -> ApiSettings:
    """Settings of an API on the test's own database, Influx database and bus exchange."""
    values: dict[str, Any] = {
        "RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": postgres_url, "INFLUXDB_URL": influx[0],
        "INFLUXDB_DATABASE": influx[1], "BUS_EXCHANGE": exchange, "API_READ_TOKEN": READ_TOKEN,
        "API_OPERATOR_TOKEN": OPERATOR_TOKEN, "TRADEBUS_ENV": "test", "EXCHANGE": "binance", "TIMEFRAME": "15m",
        "BUS_PUBLISH_TIMEOUT": "5", **extra,
    }
    return ApiSettings(**values)


def services(app: FastAPI) -> Services:
    found: Services = app.state.services
    return found


async def wait_for_bus(app: FastAPI, timeout: float = 20.0) -> None:
    """Until the app's bus is connected and its listener bound (the stream hears events)."""
    async with asyncio.timeout(timeout):
        while not (services(app).bus is not None and services(app).listener.listening):
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_app(settings: ApiSettings, *, connect_bus: bool = True) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan run, and an in-process client (no network)."""
    app = create_app(settings, connect_bus=connect_bus)
    async with app.router.lifespan_context(app):
        if connect_bus:
            await wait_for_bus(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=20) as client:
            yield app, client


@contextlib.asynccontextmanager
async def served_app(settings: ApiSettings) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app served by a real uvicorn on 127.0.0.1 and a free port; (app, base URL)."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        await wait_for_bus(app)
        yield app, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True  # a graceful stop: the lifespan closes the bus and the engine
        try:
            await asyncio.wait_for(asyncio.shield(task), 15)
        except TimeoutError:
            server.force_exit = True  # an open stream held the shutdown
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
