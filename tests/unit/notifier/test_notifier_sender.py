"""A target worker against a real local HTTP server (no services needed): what it retries, how
long it asks to wait, when it gives up, and that a full queue drops the oldest alert."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from agents.notifier.alerts import Alert, Kind, Severity
from agents.notifier.policy import RetryPlan
from agents.notifier.sender import TargetWorker
from agents.notifier.targets import WebhookTarget
from tests.support.alert_server import AlertServer


def alert(key: str) -> Alert:
    return Alert(key=key, kind=Kind.FILL, severity=Severity.INFO, title=f"alert {key}")


@pytest.fixture
def server() -> Iterator[AlertServer]:
    with AlertServer(
        fail_first={"/flaky": 2, "/limited": 1, "/refusing": 99, "/down": 99},
        fail_status={"/limited": 429, "/refusing": 401},
        retry_after={"/limited": "7"},
    ).running() as running:
        yield running


async def deliver(
    server: AlertServer, path: str, *alerts: Alert, queue_size: int = 10, per_minute: int = 6000
) -> tuple[TargetWorker, list[float]]:
    """Run a worker until the alerts were handled; the waits it asked for (never really slept)."""
    waits: list[float] = []

    async def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False

    async with httpx.AsyncClient(timeout=5) as client:
        worker = TargetWorker(WebhookTarget(f"{server.url}{path}"), client, deployment="test", queue_size=queue_size,
                              per_minute=per_minute, retry=RetryPlan(attempts=3, initial=1.0, cap=30.0), sleep=sleep)
        for item in alerts:
            worker.put(item)
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(30):
                while worker.stats.sent + worker.stats.failed < len(alerts) - worker.stats.dropped:
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
    return worker, waits


async def test_a_server_error_is_retried_with_backoff_until_it_passes(server: AlertServer) -> None:
    worker, waits = await deliver(server, "/flaky", alert("a"))
    assert (worker.stats.sent, worker.stats.failed, worker.stats.retries) == (1, 0, 2)
    assert waits == [1.0, 2.0] and server.attempts("/flaky") == 3
    assert [body["key"] for body in server.delivered("/flaky")] == ["a"]


async def test_a_rate_limited_target_is_retried_after_what_it_asked(server: AlertServer) -> None:
    worker, waits = await deliver(server, "/limited", alert("a"))
    assert worker.stats.sent == 1 and waits == [7.0]


async def test_a_refusal_is_not_retried(server: AlertServer) -> None:
    worker, waits = await deliver(server, "/refusing", alert("a"), alert("b"))
    assert (worker.stats.sent, worker.stats.failed) == (0, 2) and waits == []
    assert server.attempts("/refusing") == 2 and worker.failing
    assert worker.stats.last_error is not None and worker.stats.last_error.startswith("HTTP 401")


async def test_retries_are_bounded(server: AlertServer) -> None:
    worker, waits = await deliver(server, "/down", alert("a"))
    assert worker.stats.failed == 1 and server.attempts("/down") == 3 and waits == [1.0, 2.0]


async def test_a_full_queue_drops_the_oldest_alert(server: AlertServer) -> None:
    worker, _ = await deliver(server, "/ok", alert("a"), alert("b"), alert("c"), queue_size=2)
    assert worker.stats.dropped == 1
    assert [body["key"] for body in server.delivered("/ok")] == ["b", "c"]


async def test_beyond_the_rate_limit_the_worker_waits_for_the_next_send(server: AlertServer) -> None:
    worker, waits = await deliver(server, "/ok", alert("a"), alert("b"), alert("c"), per_minute=2)
    assert worker.stats.sent == 3
    assert waits == [pytest.approx(30.0, abs=1.0)]  # a burst of 2, then one send every 30 s
