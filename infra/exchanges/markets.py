"""ccxt exchanges and their market rules, online or from a saved snapshot.

Market rules (tick size, lot step, minimum quantity, minimum notional) always come from ccxt
market definitions. Offline they are parsed from a saved exchange response by ccxt's own parser,
so the values are exactly what ``load_markets`` would have produced from the same response.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from infra.logging import get_logger

__all__ = [
    "MarketRules",
    "SNAPSHOT_FILES",
    "load_market_snapshot",
    "make_exchange",
    "market_rules",
    "point_urls_at",
    "snapshot_exchange_info",
]

_log = get_logger(component="exchanges")

# Exchange id -> snapshot file in infra/exchanges/snapshots (raw exchange response).
SNAPSHOT_FILES: dict[str, str] = {"binance": "binance_spot_exchangeinfo.json"}

# ccxt writes request headers (which carry the API key) to its logger at DEBUG level. Give every
# exchange a dedicated logger that never goes below INFO, so a debug-level root logger cannot
# leak keys.
_CCXT_LOGGER = logging.getLogger("tradebus.exchanges.ccxt")
_CCXT_LOGGER.setLevel(logging.INFO)


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Order constraints of one market, as exact decimals."""

    symbol: str
    tick_size: Decimal
    lot_step: Decimal
    min_qty: Decimal
    min_notional: Decimal


def _raw_snapshot(exchange_id: str) -> dict[str, Any]:
    name = SNAPSHOT_FILES.get(exchange_id)
    if name is None:
        raise KeyError(f"no market snapshot for exchange {exchange_id!r}; known: {sorted(SNAPSHOT_FILES)}")
    text = resources.files("infra.exchanges.snapshots").joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def snapshot_exchange_info(exchange_id: str = "binance") -> dict[str, Any]:
    """The raw saved exchange response (a fresh copy; the fake exchange serves it)."""
    return copy.deepcopy(_raw_snapshot(exchange_id))


@lru_cache(maxsize=8)
def _parsed_snapshot(exchange_id: str) -> dict[str, dict[str, Any]]:
    raw = _raw_snapshot(exchange_id)
    # The synchronous class is enough for parsing and opens no session: nothing here touches
    # the network.
    parser = getattr(ccxt, exchange_id)({"enableRateLimit": False, "logger": _CCXT_LOGGER})
    if exchange_id == "binance":
        # binance.fetch_markets fills these from the margin endpoints before parsing and
        # parse_market reads them unconditionally; the snapshot carries no margin pair lists.
        parser.options["crossMarginPairsData"] = []
        parser.options["isolatedMarginPairsData"] = []
        listing = raw["symbols"]
    else:  # pragma: no cover - only binance has a snapshot so far
        listing = raw
    parsed = parser.parse_markets(listing)
    return {market["symbol"]: market for market in parsed}


def load_market_snapshot(exchange_id: str = "binance") -> dict[str, dict[str, Any]]:
    """ccxt-parsed markets from the saved snapshot, keyed by unified symbol ("BTC/USDT").

    Pass the result to ``exchange.set_markets`` (``make_exchange`` does) to trade or fetch
    candles without ever requesting the exchange's market list."""
    return copy.deepcopy(_parsed_snapshot(exchange_id))


def _decimal(value: Any, what: str, symbol: str) -> Decimal:
    if value is None:
        raise ValueError(f"market {symbol} has no {what}")
    # str() first: Decimal(float) would carry the binary representation error into the rule.
    return Decimal(str(value))


def market_rules(markets: Mapping[str, Mapping[str, Any]], symbol: str) -> MarketRules:
    """Tick size, lot step, minimum quantity and minimum notional of ``symbol``.

    Expects ccxt markets of an exchange using TICK_SIZE precision (as binance does), where
    ``precision.price`` / ``precision.amount`` are step sizes rather than digit counts."""
    try:
        market = markets[symbol]
    except KeyError:
        raise KeyError(f"unknown market {symbol!r}") from None
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    min_notional = (limits.get("cost") or {}).get("min")
    return MarketRules(
        symbol=symbol,
        tick_size=_decimal(precision.get("price"), "tick size", symbol),
        lot_step=_decimal(precision.get("amount"), "lot step", symbol),
        min_qty=_decimal((limits.get("amount") or {}).get("min"), "minimum quantity", symbol),
        # Not every market has a notional floor; zero means "no minimum".
        min_notional=Decimal(0) if min_notional is None else Decimal(str(min_notional)),
    )


def _rebase(url: str, api_base: str) -> str:
    # Keep the path (/api/v3, /sapi/v1, ...) so one local server can tell the APIs apart.
    parts = urlsplit(url)
    path = parts.path or ""
    return api_base.rstrip("/") + path


def point_urls_at(exchange: ccxt_async.Exchange, api_base: str) -> None:
    """Point every REST url of ``exchange`` (public, private, sapi, fapi, ...) at ``api_base``."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, str):
            return _rebase(node, api_base)
        if isinstance(node, dict):
            return {key: rewrite(value) for key, value in node.items()}
        return node

    exchange.urls["api"] = rewrite(exchange.urls["api"])


def make_exchange(
    exchange_id: str,
    *,
    api_base: str | None = None,
    markets: Mapping[str, Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    secret: str | None = None,
) -> ccxt_async.Exchange:
    """An async ccxt exchange with ccxt's rate limiter on and its markets already set.

    ``markets`` defaults to the saved snapshot when there is one, so no market-list request is
    needed; call ``await exchange.load_markets(reload=True)`` to refresh them online.
    ``api_base`` (e.g. ``http://127.0.0.1:8080``) redirects every REST url, for a local test
    exchange. The caller owns the exchange and must ``await exchange.close()``."""
    try:
        exchange_class = getattr(ccxt_async, exchange_id)
    except AttributeError:
        raise ValueError(f"unknown ccxt exchange {exchange_id!r}") from None
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "logger": _CCXT_LOGGER,
        # The source reads Retry-After from the last response to pace itself after a 429/418.
        "enableLastResponseHeaders": True,
    }
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    exchange: ccxt_async.Exchange = exchange_class(config)
    fetch_markets = exchange.options.get("fetchMarkets")
    if isinstance(fetch_markets, dict) and "types" in fetch_markets:
        # tradebus trades spot: loading markets asks for nothing else (Binance would otherwise
        # also fetch its futures exchanges' definitions, three requests instead of one).
        exchange.options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
    if api_base is not None:
        point_urls_at(exchange, api_base)
    if markets is None and exchange_id in SNAPSHOT_FILES:
        markets = load_market_snapshot(exchange_id)
    if markets is not None:
        exchange.set_markets(dict(markets))
    # Only whether keys were given is logged, never the keys themselves.
    _log.info(
        "exchange_created",
        exchange=exchange_id,
        api_base=api_base,
        authenticated=api_key is not None,
        markets=len(markets) if markets is not None else 0,
    )
    return exchange
