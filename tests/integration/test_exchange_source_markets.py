"""Market rules from the saved snapshot, and ccxt exchanges built offline or against the fake."""

from __future__ import annotations

from decimal import Decimal

import pytest

from infra.exchanges import MarketRules, load_market_snapshot, make_exchange, market_rules
from tests.support.fake_binance import KLINES, FakeBinance, make_klines, utc

pytestmark = pytest.mark.integration

START = utc(2024, 1, 1)
START_MS = int(START.timestamp() * 1000)
MS = 60_000


@pytest.mark.parametrize(
    ("symbol", "tick", "step", "min_qty"),
    [
        ("BTC/USDT", "0.01", "0.00001", "0.00001"),
        ("ETH/USDT", "0.01", "0.0001", "0.0001"),
        ("SOL/USDT", "0.01", "0.001", "0.001"),
        ("NFLX/USDT", "0.01", "0.001", "0.001"),
    ],
)
def test_snapshot_market_rules(symbol: str, tick: str, step: str, min_qty: str) -> None:
    rules = market_rules(load_market_snapshot("binance"), symbol)
    assert rules == MarketRules(symbol, Decimal(tick), Decimal(step), Decimal(min_qty), Decimal("5"))


def test_market_rules_of_an_unknown_symbol() -> None:
    with pytest.raises(KeyError, match="XRP/USDT"):
        market_rules(load_market_snapshot(), "XRP/USDT")


async def test_make_exchange_works_with_no_network_and_never_logs_keys(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    exchange = make_exchange("binance", api_key="KEY-DO-NOT-LOG-123", secret="SECRET-DO-NOT-LOG-456")
    try:
        assert exchange.enableRateLimit is True
        assert set(exchange.markets) == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "NFLX/USDT"}
        assert exchange.market("BTC/USDT")["id"] == "BTCUSDT"
        assert exchange.price_to_precision("BTC/USDT", 43_123.456) == "43123.46"  # rounds to the tick
        assert exchange.amount_to_precision("SOL/USDT", 1.23456) == "1.234"
        assert market_rules(exchange.markets, "ETH/USDT").lot_step == Decimal("0.0001")
        assert exchange.session is None  # no HTTP session was ever opened
    finally:
        await exchange.close()
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "exchange_created" in logged  # the creation was logged, without the keys
    assert "DO-NOT-LOG" not in logged


async def test_make_exchange_points_every_rest_url_at_the_api_base() -> None:
    async with FakeBinance({"BTCUSDT": make_klines(START, 3)}) as fake:
        exchange = make_exchange("binance", api_base=fake.url)
        try:
            urls = exchange.urls["api"]
            assert urls["public"] == f"{fake.url}/api/v3"
            assert urls["private"] == f"{fake.url}/api/v3"
            assert urls["sapi"] == f"{fake.url}/sapi/v1"
            assert all(url.startswith(fake.url) for url in urls.values())
            assert isinstance(await exchange.fetch_time(), int)
            rows = await exchange.fetch_ohlcv("BTC/USDT", "1m", START_MS, 10)
        finally:
            await exchange.close()
    assert [row[0] for row in rows] == [START_MS, START_MS + MS, START_MS + 2 * MS]
    # Markets came from the snapshot: no exchangeInfo request before the klines.
    assert [r.path for r in fake.requests] == ["/api/v3/time", KLINES]
