"""Backtesting an InfluxDB range (a real influxd) gives the same run as the same candles from a
file, warm-up candles included."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents.backtest.data import load_file_bars, load_influx_bars, select_window
from agents.backtest.engine import BacktestConfig, run_backtest
from agents.strategy.strategies import build_strategy
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import load_market_snapshot, market_rules
from infra.influx import InfluxPriceStore

pytestmark = pytest.mark.integration


async def test_influx_range_equals_file_run(influxdb_database: tuple[str, str]) -> None:
    url, database = influxdb_database
    bars = load_file_bars(None, exchange="binance", symbol="BTC/USDT", timeframe="15m").sliced(0, 1200)
    start, end = bars.candles[700].open_time, bars.candles[1100].open_time
    warmup = 300
    async with InfluxPriceStore(url, database) as store:
        await store.write_candles(bars.candles)
        stored = await load_influx_bars(
            store, exchange="binance", symbol="BTC/USDT", timeframe="15m", start=start, end=end, warmup=warmup
        )
    # Warm-up fetched by time: 300 candle lengths before start (the data has no gap there).
    assert stored.candles[0].open_time == start - timedelta(minutes=15 * warmup)
    values = lambda candles: [(c.open_time, c.open, c.high, c.low, c.close, c.volume) for c in candles]  # noqa: E731
    assert values(stored.candles) == values(bars.candles[400:1100])  # exact Decimals back
    config = BacktestConfig(rules=market_rules(load_market_snapshot("binance"), "BTC/USDT"))
    strategy = build_strategy("sma_cross", {"fast": 10, "slow": 30})
    from_influx = run_backtest(select_window(stored, start=start, end=end, warmup=warmup), strategy, IndicatorParams(), config)
    from_file = run_backtest(select_window(bars, start=start, end=end, warmup=warmup), strategy, IndicatorParams(), config)
    assert from_influx.window.warmup == warmup and from_influx.metrics.bars == 400
    assert from_influx.trades == from_file.trades and len(from_file.trades) > 3
    assert from_influx.metrics == from_file.metrics
