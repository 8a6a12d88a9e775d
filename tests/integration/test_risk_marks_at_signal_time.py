"""Replay equity and drawdown use prices at the signal's market time: a holding is marked with
the close of the newest candle that closed at or before the signal clock's "now", never with
candles data collection already stored ahead of it (real InfluxDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agents.risk_manager.prices import latest_close, marks
from infra.influx import InfluxPriceStore
from protocol import Candle

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def candle(symbol: str, i: int) -> Candle:
    price = Decimal(100 + i)
    return Candle.closed(
        source="test", exchange="binance", symbol=symbol, timeframe="1m", open_time=T0 + i * MINUTE,
        open=price, high=price + 1, low=price - 1, close=price, volume=Decimal(1),
    )


@pytest.fixture
async def store(influxdb_database: tuple[str, str]) -> AsyncIterator[InfluxPriceStore]:
    url, database = influxdb_database
    async with InfluxPriceStore(url, database, max_attempts=2, backoff=0.01) as price_store:
        yield price_store


async def test_marks_use_the_candle_closed_at_the_signal_time_not_later_ones(store: InfluxPriceStore) -> None:
    # Data collection is 20 candles ahead of the signal being decided (candle 4, closing at T0+5m).
    await store.write_candles([candle("ETH/USDT", i) for i in range(25)])
    signal_close = T0 + 5 * MINUTE
    assert await marks(store, "binance", "USDT", {"ETH"}, "1m", signal_close) == {"ETH": Decimal(104)}
    # Between two closes: the candle that closed before, never the one still open at that instant.
    assert await latest_close(store, "binance", "ETH/USDT", "1m", signal_close + timedelta(seconds=30)) == Decimal(104)
    # Live (no signal clock): the newest candle, as before.
    assert await marks(store, "binance", "USDT", {"ETH"}, "1m") == {"ETH": Decimal(124)}
    # Nothing closed yet at that time: no mark (never a made-up or future price).
    assert await marks(store, "binance", "USDT", {"ETH"}, "1m", T0 + timedelta(seconds=59)) == {}
