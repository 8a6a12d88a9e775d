"""infra.faults on real exception objects, raised by the real libraries against closed ports and
silent servers on this machine (no service needed). The Postgres server-side errors (serialization,
deadlock, admin shutdown) need a server: tests/integration/test_faults_postgres.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pydantic
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from infra.bus import PublishRejected, PublishTimeout, UnroutableMessage
from infra.exchanges.adapter import OrderOutcomeUnknown, OrderRejected, RateLimited
from infra.faults import classify, is_transient
from infra.influx import InfluxPriceStore, PriceStoreError, PriceStoreUnavailable
from protocol import Candle
from tests.support.failures import caught, closed_port, raised_by


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A server that accepts connections and never answers (a hung peer)."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()


@pytest.fixture
async def http_status_server() -> AsyncIterator[Callable[[int], Awaitable[int]]]:
    """start(status) -> port of a server answering every request with that HTTP status."""
    servers: list[asyncio.Server] = []

    async def start(status: int) -> int:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"error":"scripted"}'
            head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()


# --- transient ---------------------------------------------------------------------------------


async def test_asyncpg_connecting_to_a_closed_port_is_postgres_unreachable() -> None:
    exc = await caught(lambda: asyncpg.connect(host="127.0.0.1", port=closed_port(), user="x", timeout=5))
    fault = classify(exc)
    assert fault.transient
    assert fault.reason.startswith("Postgres unreachable (")


async def test_sqlalchemy_connecting_to_a_closed_port_is_postgres_unreachable() -> None:
    engine = create_async_engine(f"postgresql+asyncpg://x@127.0.0.1:{closed_port()}/x")

    async def query() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    exc = await caught(query)
    await engine.dispose()
    assert classify(exc).transient
    assert "Postgres unreachable" in classify(exc).reason


async def test_a_handler_error_wrapping_a_connection_failure_is_transient() -> None:
    async def handler() -> None:
        try:
            await asyncpg.connect(host="127.0.0.1", port=closed_port(), user="x", timeout=5)
        except OSError as exc:
            raise RuntimeError("could not book the fill") from exc

    exc = await caught(handler)
    assert isinstance(exc, RuntimeError)
    assert is_transient(exc)
    assert "Postgres" in classify(exc).reason


async def test_an_error_raised_while_handling_a_connection_failure_is_transient() -> None:
    async def handler() -> None:
        try:
            await asyncpg.connect(host="127.0.0.1", port=closed_port(), user="x", timeout=5)
        except OSError:
            raise KeyError("cleanup failed")  # noqa: B904 - the implicit __context__ is the point

    assert is_transient(await caught(handler))


async def test_httpx_connect_error_and_timeout_are_transient(silent_server: int) -> None:
    async with httpx.AsyncClient(timeout=0.3) as client:
        refused = await caught(lambda: client.get(f"http://127.0.0.1:{closed_port()}/"))
        hung = await caught(lambda: client.get(f"http://127.0.0.1:{silent_server}/"))
    assert isinstance(refused, httpx.ConnectError) and isinstance(hung, httpx.ReadTimeout)
    assert classify(refused).transient and "unreachable" in classify(refused).reason
    assert classify(hung).transient and "timed out" in classify(hung).reason


async def test_http_5xx_and_429_are_transient_4xx_is_not(http_status_server: Callable[[int], Awaitable[int]]) -> None:
    verdicts = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for status in (503, 429, 400, 404):
            port = await http_status_server(status)
            response = await client.get(f"http://127.0.0.1:{port}/")
            verdicts[status] = is_transient(raised_by(response.raise_for_status))
    assert verdicts == {503: True, 429: True, 400: False, 404: False}


async def test_influx_unavailable_is_transient_influx_refusal_is_not(
    http_status_server: Callable[[int], Awaitable[int]],
) -> None:
    async with InfluxPriceStore(f"http://127.0.0.1:{closed_port()}", "db", max_attempts=1, backoff=0) as store:
        down = await caught(lambda: store.query("SELECT * FROM candles"))
    async with InfluxPriceStore(f"http://127.0.0.1:{await http_status_server(503)}", "db", max_attempts=1) as store:
        failing = await caught(lambda: store.query("SELECT * FROM candles"))
    async with InfluxPriceStore(f"http://127.0.0.1:{await http_status_server(400)}", "db", max_attempts=1) as store:
        refused = await caught(lambda: store.query("SELECT * FROM candles"))
    assert isinstance(down, PriceStoreUnavailable) and isinstance(failing, PriceStoreUnavailable)
    assert classify(down).reason == "InfluxDB unavailable (PriceStoreUnavailable)"
    assert is_transient(failing)
    assert type(refused) is PriceStoreError and not is_transient(refused)


async def test_amqp_connection_refused_is_rabbitmq_unreachable() -> None:
    exc = await caught(lambda: aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{closed_port()}/", timeout=5))
    fault = classify(exc)
    assert fault.transient and fault.reason.startswith("RabbitMQ ")


def test_the_bus_publish_failures_are_transient() -> None:
    for exc in (PublishTimeout("no confirmation"), PublishRejected("nack"), UnroutableMessage("ex", "key")):
        fault = classify(exc)
        assert fault.transient and fault.reason.startswith("RabbitMQ did not confirm a publish")


def test_the_exchange_adapters_rate_limit_and_unknown_outcome_are_transient() -> None:
    # Execution raises these to the bus after its own back-off; a retry asks the exchange first.
    limited = RateLimited("order x not placed: still rate limited")
    assert classify(limited).reason == "exchange rate-limited (RateLimited)"
    assert classify(OrderOutcomeUnknown("timeout")).reason == "exchange outcome unknown (OrderOutcomeUnknown)"
    assert not is_transient(OrderRejected("insufficient balance"))


async def test_asyncio_timeout_is_transient() -> None:
    exc = await caught(lambda: asyncio.wait_for(asyncio.sleep(1), 0.01))
    assert classify(exc).transient and "timed out" in classify(exc).reason


async def test_a_group_is_transient_only_if_every_member_is() -> None:
    refused = await caught(lambda: asyncpg.connect(host="127.0.0.1", port=closed_port(), user="x", timeout=5))
    timeout = await caught(lambda: asyncio.wait_for(asyncio.sleep(1), 0.01))
    bug = raised_by(lambda: {}["missing"])
    assert is_transient(ExceptionGroup("outage", [refused, timeout]))  # type: ignore[list-item]
    assert not is_transient(ExceptionGroup("mixed", [refused, bug]))  # type: ignore[list-item]


# --- permanent ---------------------------------------------------------------------------------


async def test_bugs_refusals_and_invalid_data_are_permanent(tmp_path: Path) -> None:
    async def missing_file() -> None:
        (tmp_path / "absent").read_text()

    async def invalid_candle() -> None:
        Candle.model_validate({"symbol": "BTC/USDT"})

    async def bad_url() -> None:
        async with httpx.AsyncClient() as client:
            await client.get("ftp://127.0.0.1/")

    for call in (missing_file, invalid_candle, bad_url):
        exc = await caught(call)
        fault = classify(exc)
        assert not fault.transient, exc
        assert fault.reason.startswith(type(exc).__name__)
    assert isinstance(await caught(invalid_candle), pydantic.ValidationError)


def test_a_cyclic_chain_is_walked_once() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert not is_transient(first)
