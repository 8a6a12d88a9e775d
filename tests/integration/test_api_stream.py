"""The live stream on a real uvicorn and a real RabbitMQ: a published bus event arrives as an
SSE event, a reconnect with Last-Event-ID replays what was missed, an evicted range is a gap."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from infra.bus import Bus, system_topology
from protocol import Candle
from tests.support.api import READ, READ_TOKEN, api_settings, served_app, services
from tests.support.bus import cleanup, make_candle, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def exchange(rabbitmq_url: str) -> AsyncIterator[str]:
    name = f"tbapi_{uuid.uuid4().hex[:10]}"
    yield name
    await cleanup(rabbitmq_url, system_topology(name))


@pytest.fixture
async def bus(rabbitmq_url: str, exchange: str) -> AsyncIterator[Bus]:
    async with Bus(rabbitmq_url, system_topology(exchange), connection_name="test-api-stream", publish_timeout=5) as opened:
        yield opened


async def read_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events (id, event, data) of an open SSE response; comments skipped."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in current:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
        elif line.startswith(("id:", "event:", "data:")):
            key, _, value = line.partition(":")
            current[key] = value.strip()
    raise AssertionError(f"stream ended after {len(events)} of {count} events")


async def test_a_bus_event_arrives_and_a_reconnect_resumes_after_last_event_id(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], exchange: str, bus: Bus
) -> None:
    settings = api_settings(rabbitmq_url, postgres_url, influxdb_database, exchange)
    async with served_app(settings) as (app, base), httpx.AsyncClient(base_url=base, timeout=15) as http:
        # EventSource style: the token as a query parameter.
        async with http.stream("GET", "/api/v1/stream", params={"access_token": READ_TOKEN, "types": "candle"}) as live:
            assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
            first = make_candle(1)
            await bus.publish(first)
            (event,) = await read_events(live, 1)
        body = json.loads(event["data"])
        assert event["event"] == "candle" and body["type"] == "candle"
        assert Candle.model_validate(body["message"]) == first
        assert body["routing_key"] == "market.candle.binance.BTC-USDT.15m"
        last_id = int(event["id"])

        # Disconnected: two more candles happen; the reconnect replays them, in order, first.
        missed = [make_candle(2), make_candle(3)]
        for candle in missed:
            await bus.publish(candle)
        ring = services(app).ring
        assert await wait_until(lambda: ring.last_id >= last_id + 2, timeout=10), "the listener never heard both candles"
        async with http.stream("GET", "/api/v1/stream", headers={**READ, "Last-Event-ID": str(last_id)}) as again:
            replayed = await read_events(again, 2)
        assert [Candle.model_validate(json.loads(e["data"])["message"]) for e in replayed] == missed
        assert [int(e["id"]) for e in replayed] == [last_id + 1, last_id + 2]


async def test_a_resume_from_an_evicted_id_starts_with_a_gap(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], exchange: str, bus: Bus
) -> None:
    settings = api_settings(rabbitmq_url, postgres_url, influxdb_database, exchange, API_STREAM_BUFFER="2")
    async with served_app(settings) as (app, base), httpx.AsyncClient(base_url=base, timeout=15) as http:
        ring = services(app).ring
        before = ring.last_id
        for index in range(4):
            await bus.publish(make_candle(index))
        assert await wait_until(lambda: ring.last_id >= before + 4, timeout=10), "the listener never heard 4 candles"
        async with http.stream("GET", "/api/v1/stream", headers={**READ, "Last-Event-ID": str(before + 1)}) as resumed:
            gap, *kept = await read_events(resumed, 3)
        assert gap["event"] == "gap" and "id" not in gap  # a gap never moves the client's cursor
        assert json.loads(gap["data"]) == {"type": "gap", "last_event_id": before + 1,
                                           "first_available": before + 3, "restarted": False}
        assert [int(e["id"]) for e in kept] == [before + 3, before + 4]


async def test_the_stream_refuses_a_missing_or_wrong_token(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], exchange: str
) -> None:
    settings = api_settings(rabbitmq_url, postgres_url, influxdb_database, exchange)
    async with served_app(settings) as (_, base), httpx.AsyncClient(base_url=base, timeout=15) as http:
        assert (await http.get("/api/v1/stream")).status_code == 401
        assert (await http.get("/api/v1/stream", params={"access_token": "guess"})).status_code == 401
        # The query parameter is the stream's alone: other routes want the header.
        assert (await http.get("/api/v1/balances", params={"access_token": READ_TOKEN})).status_code == 401
