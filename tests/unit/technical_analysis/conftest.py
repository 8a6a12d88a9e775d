"""Real BTC-USD 15m candles (the package dataset, cleaned) for the indicator tests."""

from __future__ import annotations

import pytest

from agents.data_collection.replay import clean, load_package_btc_15m
from tests.unit.technical_analysis.reference import Series, series_of


@pytest.fixture(scope="session")
def btc() -> Series:
    """All cleaned candles of the package dataset (8,686, Sept-Dec 2021, with real gaps and
    zero-volume bars)."""
    result = clean(load_package_btc_15m(), exchange="binance", symbol="BTC/USDT", timeframe="15m")
    return series_of(result.candles)
