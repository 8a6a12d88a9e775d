"""The market-data fetcher exports its failures and its circuit breaker's state; the ccxt
adapter's error translation counts every failed trading request."""

from __future__ import annotations

from typing import Any

import ccxt

from agents.data_collection.exchange.backoff import Backoff
from agents.data_collection.exchange.breaker import CircuitBreaker
from agents.data_collection.exchange.fetcher import ResilientFetcher
from infra.exchanges.ccxt_errors import translate
from infra.metrics import REGISTRY


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class BannedOnce:
    """fetch_ohlcv answers 418 (a ban) once, then a row."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch_ohlcv(self, *args: Any) -> list[list[Any]]:
        self.calls += 1
        if self.calls == 1:
            raise ccxt.DDoSProtection("binance GET https://x 418 IP banned")
        return [[0, 1, 1, 1, 1, 1]]


async def test_a_ban_shows_as_an_open_breaker_then_closed_after_the_trial() -> None:
    states: list[dict[str, float]] = []
    clock = [0.0]
    breaker = CircuitBreaker(reset_timeout=1.0, clock=lambda: clock[0])

    async def sleep(seconds: float) -> None:  # the breaker's time passes; the metric is read meanwhile
        states.append({s: _value("tradebus_exchange_circuit_state", state=s) for s in ("closed", "open", "half_open")})
        clock[0] += seconds

    errors = _value("tradebus_exchange_request_errors_total", api="market_data", kind="ban")
    fetcher = ResilientFetcher(BannedOnce(), breaker, Backoff(), exchange_id="binance", sleep=sleep)
    assert await fetcher.ohlcv("BTC/USDT", "15m", 0, 1) == [[0, 1, 1, 1, 1, 1]]
    assert states[0] == {"closed": 0.0, "open": 1.0, "half_open": 0.0}
    assert _value("tradebus_exchange_circuit_state", state="closed") == 1.0
    assert _value("tradebus_exchange_request_errors_total", api="market_data", kind="ban") == errors + 1


def test_every_translated_trading_error_is_counted_by_kind() -> None:
    before = _value("tradebus_exchange_request_errors_total", api="trading", kind="OrderOutcomeUnknown")
    translate(ccxt.RequestTimeout("timed out"), placing=True, secrets=())
    translate(ccxt.ExchangeNotAvailable("503"), placing=True, secrets=())
    assert _value("tradebus_exchange_request_errors_total", api="trading", kind="OrderOutcomeUnknown") == before + 2
