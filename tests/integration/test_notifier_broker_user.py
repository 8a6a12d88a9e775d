"""The notifier as broker user ``notifier`` (the provisioning script's permissions, a fresh vhost
on the real RabbitMQ): it declares the topology and its private queue, binds that to the bus
exchange and the dead-letter exchange, alerts a fill — and the broker refuses it anything else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiormq
import pytest

from infra.bus import Bus, system_topology
from protocol import OrderStatus
from tests.integration.test_broker_permissions import EXCHANGE, Broker, _publish_raw, _ready, broker  # noqa: F401
from tests.integration.test_notifier_bus import running_notifier, settings_for
from tests.support.alert_messages import report
from tests.support.alert_server import AlertServer
from tests.support.orders import make_order

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[AlertServer]:
    with AlertServer().running() as running:
        yield running


async def test_the_notifier_works_as_its_own_user_and_may_publish_nothing_else(
    broker: Broker, server: AlertServer, tmp_path: Path  # noqa: F811
) -> None:
    settings = settings_for(broker.url("notifier"), EXCHANGE, tmp_path, NOTIFIER_WEBHOOK_URLS=f"{server.url}/hook")
    async with running_notifier(settings) as agent:
        async with Bus(broker.url("execution"), system_topology(EXCHANGE), connection_name="perm-notify") as bus:
            await bus.publish(report(OrderStatus.FILLED, "0.05", "0.05", trade_id="perm-1"))
        await server.wait_for(lambda: len(server.delivered("/hook")) == 1, "the fill alert")
        await agent.send_heartbeat()  # its own heartbeat key: allowed
    assert server.delivered("/hook")[0]["key"] == "fill:tb-0123456789abcdef:perm-1"
    assert await _ready(broker.url("monitor"), f"{EXCHANGE}.monitor.heartbeats") >= 1
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await _publish_raw(broker.url("notifier"), make_order(quantity="0.01"), "trade.order.BTC-USDT")
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await _publish_raw(broker.url("notifier"), report(OrderStatus.NEW), "execution.report.BTC-USDT")
