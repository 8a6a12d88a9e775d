"""Closed candles from an exchange through ccxt: backfill, then polling, with gap detection.

For every symbol a task first catches up from the last stored candle (or ``backfill_start``) to
the last closed candle, page by page, then polls for newly closed candles. Consecutive candles
more than one timeframe apart are a gap: it is reported, fetched once more, and reported filled
if the exchange now has the candles. Nothing is ever invented: what the exchange does not have
stays a reported gap.

All symbols share one ccxt exchange (its limiter spaces the requests) and one circuit breaker,
because exchanges rate-limit per IP, not per symbol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents.data_collection.exchange.backoff import Backoff
from agents.data_collection.exchange.breaker import BreakerState, CircuitBreaker
from agents.data_collection.exchange.candles import CandleBatch, closed_candles, gap_event, utc_to_ms
from agents.data_collection.exchange.fetcher import ResilientFetcher
from infra.logging import get_logger
from protocol import DataGap, timeframe_seconds

__all__ = ["ExchangeCandleSource", "SourceEvent"]

SourceEvent = CandleBatch | DataGap
Emit = Callable[[SourceEvent], Awaitable[None]]

# Failures in a row after which an unreachable exchange shows up as a health problem.
_UNHEALTHY_AFTER = 3


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Done:
    symbol: str


@dataclass(slots=True)
class _Failed:
    symbol: str
    error: BaseException


@dataclass(slots=True)
class _Series:
    symbol: str
    last_open_ms: int | None  # newest candle known (stored before start, or emitted since)


class ExchangeCandleSource:
    """Closed candles (and data gaps) of ``symbols`` from a ccxt exchange."""

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        timeframe: str,
        *,
        exchange_id: str,
        last_stored: Callable[[str], Awaitable[datetime | None]],
        page_limit: int = 1000,
        poll_interval: float | None = None,
        backfill_start: datetime | None = None,
        clock: Callable[[], datetime] = _utc_now,
        breaker: CircuitBreaker | None = None,
        backoff: Backoff | None = None,
        queue_size: int = 16,
    ) -> None:
        if not symbols:
            raise ValueError("at least one symbol is needed")
        if page_limit < 1:
            raise ValueError("page_limit must be >= 1")
        self.symbols = list(dict.fromkeys(symbols))
        self.timeframe = timeframe
        self.exchange_id = exchange_id
        self._tf_ms = timeframe_seconds(timeframe) * 1000
        self._last_stored = last_stored
        self._page_limit = page_limit
        # A sixth of the timeframe (at most 30 s): a new candle is seen soon after it closes
        # without polling a daily series every few seconds.
        self.poll_interval = poll_interval if poll_interval is not None else min(self._tf_ms / 6000, 30.0)
        self._backfill_start_ms = None if backfill_start is None else utc_to_ms(backfill_start)
        self._clock = clock
        self.breaker = breaker or CircuitBreaker()
        self._fetcher = ResilientFetcher(exchange, self.breaker, backoff or Backoff(), exchange_id=exchange_id)
        self._queue_size = queue_size
        self._log = get_logger(component="exchange_source", exchange=exchange_id, timeframe=timeframe)

    # --- health --------------------------------------------------------------------------
    def health_problems(self) -> list[str]:
        """Human-readable problems for the health report; empty when all is well."""
        problems = []
        state = self.breaker.state
        if state is not BreakerState.CLOSED:
            reason = self.breaker.last_failure or "rate limit"
            problems.append(
                f"{self.exchange_id}: rate-limit circuit breaker {state} after {reason}; "
                f"next try in {self.breaker.retry_in():.1f}s"
            )
        if self._fetcher.consecutive_errors >= _UNHEALTHY_AFTER:
            problems.append(
                f"{self.exchange_id}: {self._fetcher.consecutive_errors} failed requests in a row "
                f"({self._fetcher.last_error})"
            )
        return problems

    # --- events --------------------------------------------------------------------------
    async def events(self, *, follow: bool = True) -> AsyncIterator[SourceEvent]:
        """Candle batches and data gaps, each symbol's in time order.

        With ``follow`` (the default) it polls forever; without, it ends once every symbol has
        caught up. Close the iterator (``contextlib.aclosing``) to stop its tasks. A
        non-retriable error of any symbol ends the iteration with that error."""
        # Bounded: a long backfill waits for the consumer (which writes to the store) instead
        # of piling the whole history up in memory.
        queue: asyncio.Queue[SourceEvent | _Done | _Failed] = asyncio.Queue(self._queue_size)
        tasks = [
            asyncio.create_task(self._run_symbol(symbol, queue, follow), name=f"candles:{symbol}")
            for symbol in self.symbols
        ]
        running = len(tasks)
        try:
            while running:
                item = await queue.get()
                if isinstance(item, _Done):
                    running -= 1
                elif isinstance(item, _Failed):
                    raise item.error
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_symbol(self, symbol: str, queue: asyncio.Queue[Any], follow: bool) -> None:
        try:
            last = await self._last_stored(symbol)
            # Aligned to the candle grid, so a store that kept a shifted time cannot fake a gap.
            last_ms = None if last is None else utc_to_ms(last) // self._tf_ms * self._tf_ms
            series = _Series(symbol, last_ms)
            self._log.info("candle_source_start", symbol=symbol, last_stored=None if last is None else last.isoformat())
            await self._catch_up(series, queue.put, backfill=True)
            if not follow:
                await queue.put(_Done(symbol))
                return
            while True:
                await asyncio.sleep(self.poll_interval)
                await self._catch_up(series, queue.put, backfill=False)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # handed to the consumer, which decides (the agent restarts)
            self._log.error("candle_source_failed", symbol=symbol, error=repr(error))
            await queue.put(_Failed(symbol, error))

    # --- fetching ------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return utc_to_ms(self._clock())

    def _convert(self, symbol: str, rows: list[list[Any]], since_ms: int, now_ms: int) -> tuple[list[Any], int | None]:
        return closed_candles(
            rows,
            exchange_id=self.exchange_id,
            symbol=symbol,
            timeframe=self.timeframe,
            since_ms=since_ms,
            now_ms=now_ms,
            tf_ms=self._tf_ms,
        )

    async def _catch_up(self, series: _Series, emit: Emit, *, backfill: bool) -> None:
        """Fetch and emit everything from the newest known candle to the last closed one."""
        tf = self._tf_ms
        now_ms = self._now_ms()
        last_closed = now_ms // tf * tf - tf  # open time of the newest closed candle
        if series.last_open_ms is not None:
            cursor = series.last_open_ms + tf
        elif self._backfill_start_ms is not None:
            cursor = -(-self._backfill_start_ms // tf) * tf  # first boundary at/after the start
        else:
            cursor = last_closed  # nothing stored, no backfill asked: start with the newest
        while cursor <= last_closed:
            rows = await self._fetcher.ohlcv(series.symbol, self.timeframe, cursor, self._page_limit)
            candles, newest = self._convert(series.symbol, rows, cursor, now_ms)
            await self._emit_page(series, candles, emit, backfill=backfill, now_ms=now_ms)
            # A short page means the exchange has nothing more yet (Binance pages forward from
            # startTime and skips holes); no closed candle means no progress is possible.
            if newest is None or len(rows) < self._page_limit:
                break
            cursor = max(cursor, newest + tf)

    async def _emit_page(self, series: _Series, candles: list[Any], emit: Emit, *, backfill: bool, now_ms: int) -> None:
        tf = self._tf_ms
        run: list[Any] = []
        for candle in candles:
            open_ms = utc_to_ms(candle.open_time)
            if series.last_open_ms is not None and open_ms <= series.last_open_ms:
                continue  # already known
            if series.last_open_ms is not None and open_ms - series.last_open_ms > tf:
                # Flush first so the consumer sees the series in time order around the gap.
                if run:
                    await emit(CandleBatch(series.symbol, run, backfill))
                    run = []
                await self._handle_gap(series.symbol, series.last_open_ms + tf, open_ms, emit, now_ms)
            run.append(candle)
            series.last_open_ms = open_ms
        if run:
            await emit(CandleBatch(series.symbol, run, backfill))

    async def _handle_gap(self, symbol: str, start_ms: int, end_ms: int, emit: Emit, now_ms: int) -> None:
        """Report the gap [start_ms, end_ms), ask the exchange once more, report it filled if
        the exchange now has every missing candle."""
        tf = self._tf_ms
        gap = {"exchange_id": self.exchange_id, "symbol": symbol, "timeframe": self.timeframe}
        detected = gap_event(**gap, start_ms=start_ms, end_ms=end_ms, tf_ms=tf, filled=False)
        self._log.warning(
            "data_gap_detected", symbol=symbol, gap_start=detected.gap_start.isoformat(), missing=detected.missing_candles
        )
        await emit(detected)
        found: list[Any] = []
        cursor = start_ms
        while cursor < end_ms:
            limit = min(self._page_limit, (end_ms - cursor) // tf)
            rows = await self._fetcher.ohlcv(symbol, self.timeframe, cursor, limit, until_ms=end_ms - 1)
            candles, newest = self._convert(symbol, rows, cursor, now_ms)
            found.extend(c for c in candles if utc_to_ms(c.open_time) < end_ms)
            if newest is None or len(rows) < limit:
                break
            cursor = newest + tf
        if found:
            await emit(CandleBatch(symbol, found, backfill=True))
        if len(found) == detected.missing_candles:
            await emit(gap_event(**gap, start_ms=start_ms, end_ms=end_ms, tf_ms=tf, filled=True))
            self._log.info("data_gap_filled", symbol=symbol, gap_start=detected.gap_start.isoformat())
        else:
            self._log.warning(
                "data_gap_left_open",
                symbol=symbol,
                gap_start=detected.gap_start.isoformat(),
                missing=detected.missing_candles - len(found),
            )
