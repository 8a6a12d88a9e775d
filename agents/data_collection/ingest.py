"""Store, then publish: the one path every collected candle takes.

A candle is published only after InfluxDB confirmed it, so any consumer can read the history
behind a message. While InfluxDB (or the broker) is down the ingestor keeps the batch and tries
again with backoff — it never skips a candle — and reports the agent degraded meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from infra.bus import Bus
from infra.faults import classify
from infra.logging import get_logger
from protocol import Candle, Message

log = get_logger(component="data_collection.ingest")

T = TypeVar("T")
Sleeper = Callable[[float], Awaitable[bool]]  # returns True when the agent is stopping


class IngestStopped(Exception):
    """The agent was asked to stop while a batch was still waiting for a store or the bus."""


@dataclass
class IngestCounters:
    stored: int = 0
    published: int = 0
    gaps: int = 0
    batches: int = 0
    published_by_symbol: Counter[str] = field(default_factory=Counter)


class Ingestor:
    """Writes candle batches to the price store and then publishes them, retrying until done."""

    def __init__(self, store: Any, bus: Bus, sleep: Sleeper, max_backoff: float = 5.0) -> None:
        self._store = store
        self._bus = bus
        self._sleep = sleep
        self._max_backoff = max_backoff
        self.counters = IngestCounters()
        self.degraded_reason: str | None = None
        self.busy = False  # a batch is between "store" and "all published"

    async def ingest(self, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        self.busy = True
        try:
            await self.until_done(lambda: self._store.write_candles(candles), "price store")
            self.counters.stored += len(candles)
            for candle in candles:
                await self.publish(candle)
            self.counters.batches += 1
        finally:
            self.busy = False

    async def publish(self, message: Message) -> None:
        await self.until_done(lambda: self._bus.publish(message), "bus")
        if isinstance(message, Candle):
            self.counters.published += 1
            self.counters.published_by_symbol[message.symbol] += 1
        else:
            self.counters.gaps += 1

    async def until_done(self, action: Callable[[], Awaitable[T]], what: str) -> T:
        """``action``'s result, retried with capped backoff while ``what`` is unavailable."""
        delay = 0.5
        while True:
            try:
                result = await action()
            except Exception as exc:
                fault = classify(exc)
                if not fault.transient:
                    # A refusal (bad request) will not heal by retrying; let the agent fail loudly.
                    raise
                # Transient by nature (infra.faults): keep the batch, report degraded, try again.
                self.degraded_reason = f"{what} unavailable: {fault}"
                log.warning("waiting for a dependency", dependency=what, error=str(fault), retry_in=delay)
                if await self._sleep(delay):
                    raise IngestStopped(f"stopped while waiting for the {what}") from exc
                delay = min(delay * 2, self._max_backoff)
                continue
            self.degraded_reason = None
            return result
