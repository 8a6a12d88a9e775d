"""The paper exchange: pure fill rules (``fills``, shared with the backtester) and a simulated
exchange on Postgres implementing ``ExchangeAdapter``."""

from infra.exchanges.paper.exchange import PaperConfig, PaperExchange, PriceSource, snapshot_rules
from infra.exchanges.paper.seed import parse_balances

__all__ = ["PaperConfig", "PaperExchange", "PriceSource", "parse_balances", "snapshot_rules"]
