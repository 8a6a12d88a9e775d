"""OHLCV requests that survive rate limits and network trouble.

ccxt's own limiter (``enableRateLimit``) spaces requests by their documented weight; this layer
handles what still goes wrong: 429/418 answers feed the circuit breaker and back off, network
errors and 5xx back off and retry. Anything else (bad symbol, bad arguments) is a bug or a
configuration error and propagates.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt.async_support as ccxt

from agents.data_collection.exchange.backoff import Backoff
from agents.data_collection.exchange.breaker import BreakerState, CircuitBreaker, FailureKind
from infra.metrics.catalogue import CIRCUIT_STATE
from infra.metrics.observe import exchange_error, one_hot
from infra.logging import get_logger

__all__ = ["ResilientFetcher", "failure_kind"]

# ccxt raises DDoSProtection for both 418 and 429 on binance (and RateLimitExceeded for 429
# elsewhere); only the message, which ccxt builds as "<id> [<method> <url>] <status> ...",
# still carries the status code. A ban must open the breaker at once, so it is read from there.
_BAN_STATUS = re.compile(r"(?:^|\s)418(?:\s|$)")


def failure_kind(error: BaseException) -> FailureKind | None:
    """How a ccxt error counts for the breaker; None when it is not retriable at all."""
    if isinstance(error, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        text = str(error)
        if _BAN_STATUS.search(text) or "ip banned" in text.lower():
            return FailureKind.BAN
        return FailureKind.RATE_LIMIT
    # OperationFailed is ccxt's "retry possible" family: NetworkError, ExchangeNotAvailable,
    # RequestTimeout, and exchange-reported transient errors (e.g. binance -1001).
    if isinstance(error, ccxt.OperationFailed):
        return FailureKind.NETWORK
    return None


def _retry_after(exchange: Any) -> float | None:
    # Shared by concurrent calls, so this may be another answer's header: only ever used to
    # wait longer, never shorter, than the backoff would.
    headers = getattr(exchange, "last_response_headers", None) or {}
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


class ResilientFetcher:
    """``fetch_ohlcv`` behind a shared circuit breaker with backoff and endless retries."""

    def __init__(
        self,
        exchange: Any,
        breaker: CircuitBreaker,
        backoff: Backoff,
        *,
        exchange_id: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._exchange = exchange
        self.breaker = breaker
        self._backoff = backoff
        self._sleep = sleep
        self._log = get_logger(component="exchange_source", exchange=exchange_id)
        self.consecutive_errors = 0
        self.last_error: str | None = None

    def _show_state(self) -> None:
        one_hot(CIRCUIT_STATE, str(self.breaker.state), (str(state) for state in BreakerState))

    async def ohlcv(
        self, symbol: str, timeframe: str, since_ms: int, limit: int, until_ms: int | None = None
    ) -> list[list[Any]]:
        """Rows ``[ts_ms, open, high, low, close, volume]`` from ``since_ms`` on (at most
        ``limit``, optionally only up to ``until_ms``); retries until the exchange answers."""
        params = {} if until_ms is None else {"until": until_ms}
        attempt = 0
        while True:
            allowed = self.breaker.allow()
            self._show_state()
            if not allowed:
                # Another task may hold the half-open trial: look again shortly after.
                await self._sleep(max(self.breaker.retry_in(), self._backoff.base))
                continue
            try:
                rows = await self._exchange.fetch_ohlcv(symbol, timeframe, since_ms, limit, params)
            except Exception as error:
                kind = failure_kind(error)
                exchange_error("market_data", str(kind) if kind is not None else type(error).__name__)
                if kind is None:
                    raise
                attempt += 1
                retry_after = _retry_after(self._exchange) if kind is not FailureKind.NETWORK else None
                self.breaker.record_failure(kind, retry_after)
                self._show_state()
                self.consecutive_errors += 1
                self.last_error = f"{type(error).__name__}: {str(error)[:200]}"
                delay = max(self._backoff.delay(attempt), retry_after or 0.0)
                self._log.warning(
                    "ohlcv_fetch_failed",
                    symbol=symbol,
                    kind=str(kind),
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    breaker=str(self.breaker.state),
                    error=self.last_error,
                )
                await self._sleep(delay)
                continue
            self.breaker.record_success()
            self._show_state()
            self.consecutive_errors = 0
            self.last_error = None
            return list(rows)
