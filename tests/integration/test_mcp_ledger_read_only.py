"""The MCP server's ledger connection is read-only and bounded (the console API's is built by the
same helper, infra.db.read_only_engine): a write from the server's own engine is refused by
Postgres, and a statement that does not answer fails within the bound instead of hanging a tool
call. Real RabbitMQ, Postgres and InfluxDB; the service is started as `tradebus mcp` starts it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from agents.mcp import service as mcp_service
from agents.mcp.service import McpService
from agents.mcp.settings import McpSettings
from infra.bus import system_topology
from infra.db import upgrade_head
from protocol import HealthState
from tests.support.bus import cleanup, wait_until

pytestmark = pytest.mark.integration


async def test_the_mcp_servers_ledger_engine_cannot_write_and_does_not_hang(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await upgrade_head(postgres_url)
    monkeypatch.setattr(mcp_service, "STORE_TIMEOUT", 1.0, raising=False)  # the bound under test, kept short
    exchange = f"tbtest_{uuid.uuid4().hex[:10]}"
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": postgres_url, "INFLUXDB_URL": influxdb_database[0],
           "INFLUXDB_DATABASE": influxdb_database[1], "BUS_EXCHANGE": exchange, "BUS_CRASH_JOURNAL_DIR": str(tmp_path)}
    service = McpService(McpSettings(**env))  # type: ignore[arg-type]
    running = asyncio.create_task(service.run(install_signal_handlers=False))
    try:
        assert await wait_until(lambda: service.health is not HealthState.STARTING or running.done(), 30), "mcp service start"
        assert not running.done(), "the MCP service stopped at start"
        async with service.engine.connect() as connection:
            with pytest.raises(DBAPIError, match="read-only transaction"):
                await connection.execute(text("CREATE TABLE mcp_must_not_write (id int)"))
        async with service.engine.connect() as connection:
            # pg_sleep stands in for a Postgres that does not answer; the bound (1 s) must end it.
            # The test's own guard (20 s) only keeps an unbounded engine from hanging the test.
            slow = asyncio.create_task(connection.execute(text("SELECT pg_sleep(30)")))
            await asyncio.wait([slow], timeout=20)
            if not slow.done():
                slow.cancel()
            assert slow.done() and not slow.cancelled(), "the statement was not ended by the engine's bound"
            assert isinstance(slow.exception(), TimeoutError), repr(slow.exception())
    finally:
        service.request_stop()
        await asyncio.wait_for(running, 30)
        await cleanup(rabbitmq_url, system_topology(exchange))
