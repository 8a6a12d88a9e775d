"""The console's system routes on a real RabbitMQ: agents from the heartbeats it heard, queue
depths and consumers as the broker counts them, dead letters with their reasons (not consumed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aio_pika
import httpx
import pytest

from infra.bus import Bus, system_topology
from infra.bus import headers as h
from protocol import HealthState, Heartbeat
from tests.support.api import READ, api, exchange
from tests.support.bus import queue_depth, wait_until

pytestmark = pytest.mark.integration
__all__ = ["api", "exchange"]  # the fixtures, imported from tests.support.api


async def test_agents_are_the_heartbeats_heard_with_their_problems(api: httpx.AsyncClient, rabbitmq_url: str, exchange: str) -> None:
    now = datetime.now(UTC)
    beat = Heartbeat(source="execution", agent="execution", instance_id="i-7", started_at=now - timedelta(minutes=5),
                     uptime_seconds=300.0, health=HealthState.DEGRADED, consumed=12, published=11, dead_lettered=1,
                     errors=2, detail={"problems": "refused 1 order(s) without a matching reservation"})
    async with Bus(rabbitmq_url, system_topology(exchange), connection_name="test-api-system", publish_timeout=5) as bus:
        await bus.publish(beat)

    async def heard() -> bool:
        return bool((await api.get("/api/v1/agents", headers=READ)).json()["agents"])

    assert await wait_until(heard, timeout=10), "the API never heard the heartbeat"
    (agent,) = (await api.get("/api/v1/agents", headers=READ)).json()["agents"]
    assert (agent["agent"], agent["instance_id"], agent["health"], agent["consumed"], agent["errors"]) == (
        "execution", "i-7", "DEGRADED", 12, 2)
    assert agent["problems"] == "refused 1 order(s) without a matching reservation" and agent["stale"] is False


async def test_queues_and_dead_letters_as_the_broker_counts_them(api: httpx.AsyncClient, rabbitmq_url: str, exchange: str) -> None:
    topology = system_topology(exchange)
    orders = f"{exchange}.execution.orders"
    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    async with connection:  # one dead letter, as the consumer writes it (reason in the headers)
        channel = await connection.channel()
        dlx = await channel.get_exchange(topology.dead_letter_exchange)
        await dlx.publish(aio_pika.Message(b"{}", message_id="m-1", type="trade.order/1",
                                           headers={h.ERROR: "validation failed: quantity", h.ERROR_KIND: "invalid"}),
                          routing_key=orders)
    assert await wait_until(lambda: queue_depth(rabbitmq_url, f"{orders}.dlq"), timeout=10)

    queues = {q["name"]: q for q in (await api.get("/api/v1/queues", headers=READ)).json()["queues"]}
    assert set(queues) == {spec.name for spec in topology.queues}
    assert all(q["exists"] for q in queues.values())
    assert (queues[orders]["depth"], queues[orders]["consumers"], queues[orders]["dead_letters"]) == (0, 0, 1)

    answer = (await api.get("/api/v1/dead-letters", params={"queue": "execution.orders"}, headers=READ)).json()
    (entry,) = answer["queues"]
    assert entry["queue"] == orders and entry["count"] == 1
    (letter,) = entry["sample"]
    assert (letter["message_id"], letter["schema"], letter["error"], letter["kind"]) == (
        "m-1", "trade.order/1", "validation failed: quantity", "invalid")
    assert await queue_depth(rabbitmq_url, f"{orders}.dlq") == 1  # looked at, not consumed
    unknown = await api.get("/api/v1/dead-letters", params={"queue": "nope"}, headers=READ)
    assert unknown.status_code == 404
