"""Market rules (lot step, minimum quantity, minimum notional) for sizing, by exchange and symbol.

Offline (paper) they come from the saved ccxt snapshot; in sandbox/live the markets are loaded
once from the exchange through ccxt (``RISK_MARKET_SOURCE``). Never hard-coded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.exchanges import MarketRules, load_market_snapshot, make_exchange, market_rules
from infra.logging import get_logger

__all__ = ["MarketBook", "UnknownMarket"]

_log = get_logger(component="risk_markets")


class UnknownMarket(LookupError):
    """No market definition for this exchange and symbol."""


class MarketBook:
    """Market rules per exchange, loaded lazily and kept for the process's life."""

    def __init__(self, *, from_exchange: bool, api_base: str | None = None) -> None:
        self._from_exchange = from_exchange
        self._api_base = api_base
        self._markets: dict[str, Mapping[str, Mapping[str, Any]]] = {}

    async def rules(self, exchange: str, symbol: str) -> MarketRules:
        markets = self._markets.get(exchange)
        if markets is None:
            markets = await self._load(exchange)
            self._markets[exchange] = markets
        try:
            return market_rules(markets, symbol)
        except (KeyError, ValueError) as exc:
            raise UnknownMarket(f"{exchange} {symbol}: {exc}") from None

    async def _load(self, exchange: str) -> Mapping[str, Mapping[str, Any]]:
        if not self._from_exchange:
            try:
                return load_market_snapshot(exchange)
            except KeyError as exc:
                raise UnknownMarket(str(exc)) from None
        client = make_exchange(exchange, api_base=self._api_base, markets={})
        try:
            markets: Mapping[str, Mapping[str, Any]] = await client.load_markets(reload=True)
        finally:
            await client.close()
        _log.info("markets_loaded", exchange=exchange, markets=len(markets))
        return markets
