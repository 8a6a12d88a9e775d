"""ccxt exchange construction and market rules (online, or offline from saved snapshots)."""

from infra.exchanges.markets import (
    SNAPSHOT_FILES,
    MarketRules,
    load_market_snapshot,
    make_exchange,
    market_rules,
    point_urls_at,
    snapshot_exchange_info,
)

__all__ = [
    "SNAPSHOT_FILES",
    "MarketRules",
    "load_market_snapshot",
    "make_exchange",
    "market_rules",
    "point_urls_at",
    "snapshot_exchange_info",
]
