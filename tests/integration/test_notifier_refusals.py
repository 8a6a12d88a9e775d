"""A forged order is refused by the real execution agent (no reservation behind it) and the
notifier alerts it: the refusal, the execution agent turning DEGRADED, and the real order's fill.
Real RabbitMQ, Postgres and InfluxDB; execution and notifier in this event loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import OrderRefusal
from tests.integration.test_execution_agent import T1, Running, World, world  # noqa: F401 (fixture)
from tests.integration.test_notifier_bus import running_notifier, settings_for
from tests.support.alert_server import AlertServer
from tests.support.orders import make_order

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[AlertServer]:
    with AlertServer().running() as running:
        yield running


async def test_executions_refusal_of_a_forged_order_is_alerted(world: World, server: AlertServer, tmp_path: Path) -> None:
    settings = settings_for(world.rabbitmq_url, world.topology.exchange, tmp_path,
                            NOTIFIER_WEBHOOK_URLS=f"{server.url}/hook", HEARTBEAT_INTERVAL="1")
    forged = make_order(quantity="0.05", reference_time=T1).model_copy(update={"strategy_id": "forged"})
    real = make_order(quantity="0.001", reference_time=T1)
    async with running_notifier(settings):
        async with Running(world):
            await world.bus.publish(forged)  # on the exchange, no reservation behind it
            await world.publish(real)
            wanted = {"order_refused", "fill", "agent_degraded"}
            await server.wait_for(lambda: wanted <= {b["kind"] for b in server.delivered("/hook")},
                                  "the refusal, the fill and execution DEGRADED", timeout=60)
    by_kind = {body["kind"]: body for body in server.delivered("/hook")}
    refused = by_kind["order_refused"]
    assert refused["severity"] == "critical" and refused["fields"]["strategy"] == "forged"
    assert refused["fields"]["client_order_id"] == forged.client_order_id
    assert refused["fields"]["reason"].startswith(f"{OrderRefusal.NO_RESERVATION.value}: ")
    assert by_kind["fill"]["fields"]["client_order_id"] == real.client_order_id
    assert by_kind["agent_degraded"]["fields"]["agent"] == "execution"
    assert "forged" in by_kind["agent_degraded"]["fields"]["problems"]
    assert [b["kind"] for b in server.delivered("/hook")].count("order_refused") == 1
