"""`python -m agents.notifier` as its own OS process: a fill reaches Telegram's Bot API (a local
recording server on the configured TELEGRAM_API_URL) after one failure, a dead webhook is given
up, and neither the bot token nor the webhook's secret path appears anywhere in its logs."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from infra.bus import Bus, system_topology
from protocol import Heartbeat, OrderStatus, decode, topics
from tests.support.alert_messages import report
from tests.support.alert_server import AlertServer
from tests.support.bus import cleanup, declare
from tests.support.failures import closed_port
from tests.support.processes import spawn

pytestmark = pytest.mark.integration

TOKEN = "987654:AAF-process-token-must-stay-secret"
TELEGRAM = f"/bot{TOKEN}/sendMessage"
HOOK_SECRET = "T0SECRET/B0SECRET/hooksecretpath"


@pytest.fixture
def server() -> Iterator[AlertServer]:
    with AlertServer(fail_first={TELEGRAM: 1}).running() as running:
        yield running


@pytest.fixture
async def exchange(rabbitmq_url: str) -> AsyncIterator[str]:
    name = f"tbnotifyp_{uuid.uuid4().hex[:10]}"
    await declare(rabbitmq_url, system_topology(name))
    yield name
    await cleanup(rabbitmq_url, system_topology(name))


async def next_beat(queue: aio_pika.abc.AbstractQueue, what: str, condition: object = None) -> Heartbeat:
    """The next notifier heartbeat for which ``condition(beat)`` holds, within 90 s."""
    async with asyncio.timeout(90):
        async with queue.iterator() as beats:
            async for incoming in beats:
                await incoming.ack()
                beat = decode(incoming.body, Heartbeat)
                if condition is None or condition(beat):  # type: ignore[operator]
                    return beat
    raise AssertionError(f"no heartbeat of the notifier showing {what}")


async def test_the_process_alerts_and_never_logs_its_secrets(
    rabbitmq_url: str, exchange: str, server: AlertServer, tmp_path: Path
) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    process = None
    async with connection:
        channel = await connection.channel()
        beats = await channel.declare_queue("", exclusive=True)
        await beats.bind(exchange, routing_key=topics.heartbeat("notifier"))
        process = spawn("agents.notifier", env={
            "RABBITMQ_URL": rabbitmq_url, "BUS_EXCHANGE": exchange, "BUS_CRASH_JOURNAL_DIR": str(tmp_path),
            "HEARTBEAT_INTERVAL": "0.5", "LOG_LEVEL": "DEBUG",
            "NOTIFIER_WEBHOOK_URLS": f"http://127.0.0.1:{closed_port()}/services/{HOOK_SECRET}",
            "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "42", "TELEGRAM_API_URL": server.url,
            "NOTIFIER_RETRY_ATTEMPTS": "2", "NOTIFIER_RETRY_BACKOFF": "0.05",
        })
        try:
            await next_beat(beats, "it running")
            async with Bus(rabbitmq_url, system_topology(exchange), connection_name="test-notifier-process") as bus:
                await bus.publish(report(OrderStatus.FILLED, "0.05", "0.05", trade_id="t-77"))
            await server.wait_for(lambda: len(server.delivered(TELEGRAM)) == 1, "the fill on Telegram", timeout=60)
            beat = await next_beat(beats, "the dead webhook given up", lambda b: b.detail.get("webhook1.failed") == "1")
            assert beat.health.value == "DEGRADED" and beat.detail["telegram.sent"] == "1"
        finally:
            process.send_signal(signal.SIGTERM)
            _, logs = await asyncio.to_thread(process.communicate, timeout=60)
    assert process.returncode == 0, logs[-2000:]
    [message] = server.delivered(TELEGRAM)
    assert message["chat_id"] == "42" and "BUY 0.05 BTC/USDT @ 50000" in message["text"]
    assert server.attempts(TELEGRAM) == 2  # failed once, then delivered once
    # The lines that could have carried a secret were written, and carry none.
    assert "alert not delivered, retrying" in logs and "alert not delivered, given up" in logs
    assert "ConnectError" in logs and "HTTP 500" in logs
    assert TOKEN not in logs and TOKEN.split(":")[1] not in logs
    assert HOOK_SECRET not in logs and "hooksecretpath" not in logs
