"""One worker per target: its own bounded queue, rate limit and retries, so a slow or dead
target delays nothing but its own alerts (and never the bus or the agents)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from agents.notifier.alerts import Alert
from agents.notifier.policy import RateLimiter, RetryPlan, retryable_status
from agents.notifier.targets import Target
from infra.logging import get_logger

__all__ = ["SendStats", "TargetWorker"]

log = get_logger(component="notifier.sender")

Sleep = Callable[[float], Awaitable[bool]]  # True: stop requested


@dataclass
class SendStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0
    last_error: str | None = None


class _Refused(Exception):
    """The target answered with a status that retrying will not change."""


class _Failed(Exception):
    """A try failed and may be repeated (``retry_after``: what the target asked for)."""

    def __init__(self, text: str, retry_after: float | None = None) -> None:
        super().__init__(text)
        self.retry_after = retry_after


class TargetWorker:
    """Sends the alerts put to it, one at a time, in order."""

    def __init__(
        self, target: Target, client: httpx.AsyncClient, *, deployment: str, queue_size: int,
        per_minute: int, retry: RetryPlan, sleep: Sleep,
    ) -> None:
        self.target = target
        self._client = client
        self._deployment = deployment
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._limiter = RateLimiter(per_minute, time.monotonic())
        self._retry = retry
        self._sleep = sleep
        self.stats = SendStats()
        self.failing = False

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def put(self, alert: Alert) -> None:
        """Queue an alert without waiting: when the queue is full the oldest alert is dropped
        (counted and logged), since a target that cannot keep up must not hold anything back."""
        if self._queue.full():
            dropped = self._queue.get_nowait()
            self.stats.dropped += 1
            log.warning("alert dropped: target queue full", target=self.target.name, key=dropped.key,
                        queue_size=self._queue.maxsize)
        self._queue.put_nowait(alert)

    async def run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                if await self._deliver(alert):
                    return
            except Exception as exc:  # a bug with one alert must not silence the target for good
                self._give_up(alert, self.target.redact(f"{type(exc).__name__}: {exc}"), 0)

    async def _deliver(self, alert: Alert) -> bool:
        """Send one alert with retries; True when the notifier is stopping."""
        wait = self._limiter.wait_time(time.monotonic())
        if wait > 0 and await self._sleep(wait):
            return True
        self._limiter.take(time.monotonic())
        failures = 0
        while True:
            try:
                await self._send_once(alert)
            except _Refused as exc:
                self._give_up(alert, str(exc), failures + 1)
                return False
            except _Failed as exc:
                failures += 1
                delay = self._retry.delay(failures, exc.retry_after)
                if delay is None:
                    self._give_up(alert, str(exc), failures)
                    return False
                self.stats.retries += 1
                log.warning("alert not delivered, retrying", target=self.target.name, key=alert.key,
                            attempt=failures, retry_in=round(delay, 3), error=str(exc))
                if await self._sleep(delay):
                    return True
                continue
            self.stats.sent += 1
            self.failing = False
            log.info("alert sent", target=self.target.name, key=alert.key, kind=alert.kind.value, attempts=failures + 1)
            return False

    def _give_up(self, alert: Alert, error: str, attempts: int) -> None:
        self.stats.failed += 1
        self.stats.last_error = error
        self.failing = True
        log.error("alert not delivered, given up", target=self.target.name, key=alert.key, attempts=attempts, error=error)

    async def _send_once(self, alert: Alert) -> None:
        try:
            response = await self._client.post(self.target.url, json=self.target.body(alert, self._deployment))
        except httpx.HTTPError as exc:
            # httpx puts the URL into some messages: never let the token through.
            raise _Failed(self.target.redact(f"{type(exc).__name__}: {exc}")) from None
        if response.is_success:
            return
        text = self.target.redact(f"HTTP {response.status_code}: {response.text[:200]}")
        if retryable_status(response.status_code):
            raise _Failed(text, _retry_after(response))
        raise _Refused(text)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the target asked to wait: the Retry-After header, or Telegram's
    ``parameters.retry_after`` in a 429 body."""
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            return float(header)
        except ValueError:
            return None
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("parameters", {}).get("retry_after") if isinstance(body, dict) else None
    return float(value) if isinstance(value, (int, float)) else None
