"""The exchange candle source against a local fake of Binance's spot REST API, through ccxt.

No external service: the fake runs on 127.0.0.1 and ccxt's urls point at it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from agents.data_collection.exchange import (
    Backoff,
    BreakerState,
    CandleBatch,
    CircuitBreaker,
    ExchangeCandleSource,
    FailureKind,
)
from infra.exchanges import make_exchange
from protocol import Candle, DataGap, candle_id
from tests.support.fake_binance import KLINES, FakeBinance, LoggedRequest, make_klines, minutes, utc

pytestmark = pytest.mark.integration

START = utc(2024, 1, 1)
MS = 60_000  # one 1m candle in milliseconds
START_MS = int(START.timestamp() * 1000)


async def nothing_stored(symbol: str) -> datetime | None:
    return None


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@contextlib.asynccontextmanager
async def exchange_for(fake: FakeBinance) -> AsyncIterator[Any]:
    exchange = make_exchange("binance", api_base=fake.url)
    try:
        yield exchange
    finally:
        await exchange.close()


def make_source(exchange: Any, symbols: list[str], **kwargs: Any) -> ExchangeCandleSource:
    options: dict[str, Any] = {
        "exchange_id": "binance",
        "last_stored": nothing_stored,
        "backfill_start": START,
        "backoff": Backoff(base=0.01, cap=0.05),
        "poll_interval": 0.01,
    }
    options.update(kwargs)
    return ExchangeCandleSource(exchange, symbols, "1m", **options)


async def collect(
    source: ExchangeCandleSource,
    *,
    follow: bool = False,
    until: Callable[[list[Any]], bool] | None = None,
    timeout: float = 10,
) -> list[CandleBatch | DataGap]:
    events: list[CandleBatch | DataGap] = []
    async with asyncio.timeout(timeout), contextlib.aclosing(source.events(follow=follow)) as stream:
        async for event in stream:
            events.append(event)
            if until is not None and until(events):
                break
    return events


def candles_of(events: list[Any], symbol: str | None = None) -> list[Candle]:
    return [c for e in events if isinstance(e, CandleBatch) and symbol in (None, e.symbol) for c in e.candles]


def gaps_of(events: list[Any]) -> list[DataGap]:
    return [e for e in events if isinstance(e, DataGap)]


def opens(candles: list[Candle]) -> list[datetime]:
    return [c.open_time for c in candles]


def expected_opens(indexes: range | list[int]) -> list[datetime]:
    return [START + minutes(i) for i in indexes]


def start_times(requests: list[LoggedRequest]) -> list[int]:
    return [(int(r.params["startTime"]) - START_MS) // MS for r in requests if "startTime" in r.params]


# --- pagination and backfill -------------------------------------------------------------


async def test_backfill_pages_through_2500_candles_in_order() -> None:
    # Index 2500 is the candle still forming at "now": Binance returns it, the source must not.
    now = START + minutes(2500) + timedelta(seconds=30)
    async with FakeBinance({"BTCUSDT": make_klines(START, 2501)}) as fake, exchange_for(fake) as exchange:
        events = await collect(make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now)))

    candles = candles_of(events)
    assert opens(candles) == expected_opens(range(2500))
    assert not gaps_of(events)
    assert all(isinstance(e, CandleBatch) and e.backfill for e in events)
    requests = fake.requests_to(KLINES)
    assert len(requests) >= 3
    assert start_times(requests)[:3] == [0, 1000, 2000]
    assert {r.params["limit"] for r in requests} == {"1000"}
    assert not fake.requests_to("/api/v3/exchangeInfo")  # markets came from the snapshot
    first = candles[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("100"), Decimal("100.5"), Decimal("99.5"), Decimal("100.25"), Decimal("1"),
    )
    assert candles[1].open == Decimal("100.01")  # str() conversion: no binary float noise
    assert (first.source, first.exchange, first.symbol, first.timeframe) == ("data_collection", "binance", "BTC/USDT", "1m")
    assert first.message_id == candle_id("binance", "BTC/USDT", "1m", START)
    assert first.close_time == START + minutes(1)


async def test_backfill_starts_after_the_last_stored_candle() -> None:
    now = START + minutes(2500)
    stored = {"BTC/USDT": START + minutes(1499)}

    async def last_stored(symbol: str) -> datetime | None:
        return stored.get(symbol)

    async with FakeBinance({"BTCUSDT": make_klines(START, 2500)}) as fake, exchange_for(fake) as exchange:
        source = make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), last_stored=last_stored)
        events = await collect(source)

    assert opens(candles_of(events)) == expected_opens(range(1500, 2500))
    assert start_times(fake.requests_to(KLINES)) == [1500]
    assert not gaps_of(events)


async def test_several_symbols_at_once() -> None:
    now = START + minutes(1500)
    series = {
        "BTCUSDT": make_klines(START, 1500),
        "ETHUSDT": make_klines(START, 1500, price=2000),
        "SOLUSDT": make_klines(START + minutes(700), 800, price=20),  # listed later
    }
    async with FakeBinance(series) as fake, exchange_for(fake) as exchange:
        events = await collect(make_source(exchange, ["BTC/USDT", "ETH/USDT", "SOL/USDT"], clock=fixed_clock(now)))

    assert opens(candles_of(events, "BTC/USDT")) == expected_opens(range(1500))
    assert opens(candles_of(events, "ETH/USDT")) == expected_opens(range(1500))
    assert opens(candles_of(events, "SOL/USDT")) == expected_opens(range(700, 1500))
    assert candles_of(events, "ETH/USDT")[0].open == Decimal("2000")
    assert not gaps_of(events)  # a market that starts later has no gap before its first candle


class PollClock:
    """The source's clock, which it reads once per poll: counts the polls, and can move time on
    from a chosen poll, so a test knows which polls saw which market."""

    def __init__(self, now: datetime) -> None:
        self.now, self.polls = now, 0
        self._later: tuple[int, datetime] | None = None

    def __call__(self) -> datetime:
        self.polls += 1
        if self._later is not None and self.polls >= self._later[0]:
            return self._later[1]
        return self.now

    def from_poll(self, poll: int, moment: datetime) -> None:
        self._later = (poll, moment)


async def test_polling_emits_newly_closed_candles_only() -> None:
    clock = PollClock(START + minutes(10))
    async with FakeBinance({"BTCUSDT": make_klines(START, 11)}) as fake, exchange_for(fake) as exchange:
        source = make_source(exchange, ["BTC/USDT"], clock=clock)
        events: list[Any] = []
        async with asyncio.timeout(10), contextlib.aclosing(source.events()) as stream:
            async for event in stream:
                events.append(event)
                if len(candles_of(events)) == 10:
                    # Three more candles close; the fourth new one is still forming.
                    fake.add_klines("BTCUSDT", make_klines(START, 15)[11:])
                    clock.now = START + minutes(13) + timedelta(seconds=10)
                if len(candles_of(events)) == 13:
                    # The sentinel: candle 13 closes only after two more whole polls saw this
                    # market. A symbol's polls and events are sequential, so anything those
                    # polls wrongly emitted (the forming candle, a repeat) comes before it.
                    clock.from_poll(clock.polls + 3, START + minutes(14) + timedelta(seconds=10))
                if candles_of(events)[-1].open_time >= START + minutes(13):
                    break

    assert opens(candles_of(events)) == expected_opens(range(14))
    assert [e.backfill for e in events] == [True, False, False]


# --- gaps --------------------------------------------------------------------------------


@pytest.mark.parametrize("page_limit", [1000, 100])
async def test_gap_is_reported_and_left_when_the_exchange_has_no_candles(page_limit: int) -> None:
    now = START + minutes(300)
    hole = range(100, 105)
    async with FakeBinance({"BTCUSDT": make_klines(START, 300, skip=hole)}) as fake, exchange_for(fake) as exchange:
        events = await collect(make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), page_limit=page_limit))

    [gap] = gaps_of(events)
    assert (gap.gap_start, gap.gap_end, gap.missing_candles, gap.filled) == (
        START + minutes(100), START + minutes(105), 5, False,
    )
    assert (gap.exchange, gap.symbol, gap.timeframe, gap.source) == ("binance", "BTC/USDT", "1m", "data_collection")
    assert opens(candles_of(events)) == [t for t in expected_opens(range(300)) if t not in expected_opens(hole)]
    # The source asked for exactly the missing range once more, and invented nothing.
    retries = [r for r in fake.requests_to(KLINES) if "endTime" in r.params]
    assert [(int(r.params["startTime"]), int(r.params["endTime"])) for r in retries] == [
        (START_MS + 100 * MS, START_MS + 105 * MS - 1)
    ]


async def test_gap_right_after_the_last_stored_candle_is_detected() -> None:
    now = START + minutes(100)

    async def last_stored(symbol: str) -> datetime | None:
        return START + minutes(49)

    async with FakeBinance({"BTCUSDT": make_klines(START, 100, skip=range(50, 53))}) as fake:
        async with exchange_for(fake) as exchange:
            source = make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), last_stored=last_stored)
            events = await collect(source)

    [gap] = gaps_of(events)
    assert (gap.gap_start, gap.gap_end, gap.missing_candles, gap.filled) == (
        START + minutes(50), START + minutes(53), 3, False,
    )
    assert opens(candles_of(events)) == expected_opens(range(53, 100))


async def test_gap_the_exchange_fills_later_is_reported_filled_and_emitted_once() -> None:
    now = START + minutes(300)
    full = make_klines(START, 300)
    hole = range(100, 105)

    def fill_after_first(fake: FakeBinance, request: LoggedRequest) -> None:
        if len(fake.requests_to(KLINES)) == 1:
            fake.add_klines("BTCUSDT", full[100:105])

    async with FakeBinance({"BTCUSDT": make_klines(START, 300, skip=hole)}, on_klines=fill_after_first) as fake:
        async with exchange_for(fake) as exchange:
            events = await collect(make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), page_limit=200))

    assert opens(candles_of(events)) == expected_opens(range(300))  # each exactly once, in order
    detected, filled = gaps_of(events)
    assert (detected.filled, filled.filled) == (False, True)
    assert (filled.gap_start, filled.gap_end, filled.missing_candles) == (START + minutes(100), START + minutes(105), 5)
    assert detected.message_id != filled.message_id
    # Order: candles before the hole, the gap, its fill, the fill report, the rest.
    kinds = [(type(e).__name__, e.filled if isinstance(e, DataGap) else len(e.candles)) for e in events]
    assert kinds[:4] == [("CandleBatch", 100), ("DataGap", False), ("CandleBatch", 5), ("DataGap", True)]
    assert events[2].backfill


# --- rate limits and failures ------------------------------------------------------------


def recording_breaker(threshold: int, reset_timeout: float) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    transitions: list[tuple[str, str]] = []
    breaker = CircuitBreaker(threshold, reset_timeout, on_transition=lambda a, b: transitions.append((a.value, b.value)))
    return breaker, transitions


async def test_429_burst_opens_the_breaker_which_recovers_and_loses_nothing() -> None:
    now = START + minutes(2500)
    transitions: list[tuple[str, str]] = []
    problems_while_open: list[list[str]] = []
    sources: list[ExchangeCandleSource] = []

    def on_transition(old: BreakerState, new: BreakerState) -> None:
        transitions.append((old.value, new.value))
        if new is BreakerState.OPEN:  # what the health report says while it is open
            problems_while_open.append(sources[0].health_problems())

    breaker = CircuitBreaker(3, 0.2, on_transition=on_transition)
    async with FakeBinance({"BTCUSDT": make_klines(START, 2500)}) as fake, exchange_for(fake) as exchange:
        sources.append(make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), breaker=breaker))
        fake.fail_next(5, 429, retry_after=0)
        events = await collect(sources[0])
    source = sources[0]

    assert opens(candles_of(events)) == expected_opens(range(2500))
    assert transitions == [
        ("closed", "open"),  # after 3 consecutive 429s
        ("open", "half_open"), ("half_open", "open"),  # 4th request, the trial: 429 again
        ("open", "half_open"), ("half_open", "open"),  # 5th
        ("open", "half_open"), ("half_open", "closed"),  # 6th succeeds
    ]
    assert all(p and "circuit breaker open" in p[0] for p in problems_while_open)
    assert source.health_problems() == []
    statuses = [r.status for r in fake.requests_to(KLINES)]
    assert statuses[:6] == [429, 429, 429, 429, 429, 200]
    times = [r.at for r in fake.requests_to(KLINES)]
    assert times[3] - times[2] >= 0.19  # nothing went out while the breaker was open


async def test_429_burst_with_several_symbols_delivers_everything_exactly_once() -> None:
    now = START + minutes(1200)
    breaker, _ = recording_breaker(3, 0.1)
    series = {s: make_klines(START, 1200) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}
    async with FakeBinance(series) as fake, exchange_for(fake) as exchange:
        fake.fail_next(6, 429, retry_after=0)
        source = make_source(exchange, ["BTC/USDT", "ETH/USDT", "SOL/USDT"], clock=fixed_clock(now), breaker=breaker)
        events = await collect(source)

    for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        assert opens(candles_of(events, symbol)) == expected_opens(range(1200))
    assert breaker.times_opened >= 1
    assert breaker.state is BreakerState.CLOSED


async def test_418_ban_opens_the_breaker_at_once_and_honours_retry_after() -> None:
    now = START + minutes(500)
    breaker, transitions = recording_breaker(3, 0.05)
    async with FakeBinance({"BTCUSDT": make_klines(START, 500)}) as fake, exchange_for(fake) as exchange:
        fake.fail_next(1, 418, retry_after=0.3)
        source = make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), breaker=breaker)
        events = await collect(source)

    assert opens(candles_of(events)) == expected_opens(range(500))
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert breaker.last_failure is FailureKind.BAN
    first, second = fake.requests_to(KLINES)[:2]
    assert (first.status, second.status) == (418, 200)
    assert second.at - first.at >= 0.29  # the ban's Retry-After, longer than reset_timeout


async def test_503_and_network_errors_back_off_and_retry_without_tripping_the_breaker() -> None:
    now = START + minutes(50)
    breaker, transitions = recording_breaker(2, 5.0)
    async with FakeBinance({"BTCUSDT": make_klines(START, 50)}) as fake, exchange_for(fake) as exchange:
        fake.fail_next(3, 503)
        source = make_source(exchange, ["BTC/USDT"], clock=fixed_clock(now), breaker=breaker)
        events = await collect(source)

    assert opens(candles_of(events)) == expected_opens(range(50))
    assert transitions == []
    assert [r.status for r in fake.requests_to(KLINES)] == [503, 503, 503, 200]


async def test_unreachable_exchange_is_retried_and_shows_in_health() -> None:
    async with FakeBinance({"BTCUSDT": make_klines(START, 5)}) as fake:
        dead_url = fake.url
    # The fake is gone: connections are refused (ccxt: ExchangeNotAvailable), retried forever.
    exchange = make_exchange("binance", api_base=dead_url)
    try:
        source = make_source(exchange, ["BTC/USDT"], clock=fixed_clock(START + minutes(5)))
        task = asyncio.create_task(collect(source))
        async with asyncio.timeout(5):
            while not source.health_problems():
                await asyncio.sleep(0.01)
        assert "failed requests in a row" in source.health_problems()[0]
        assert source.breaker.state is BreakerState.CLOSED
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await exchange.close()


async def test_a_non_retriable_error_ends_the_stream() -> None:
    async with FakeBinance({"BTCUSDT": make_klines(START, 5)}) as fake, exchange_for(fake) as exchange:
        source = make_source(exchange, ["DOGE/USDT"], clock=fixed_clock(START + minutes(5)))
        with pytest.raises(Exception, match="DOGE/USDT"):
            await collect(source)
