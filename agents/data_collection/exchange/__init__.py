"""The ``exchange`` candle source: closed candles from a ccxt exchange (backfill with
pagination, polling, gap detection, rate-limit circuit breaker)."""

from agents.data_collection.exchange.backoff import Backoff
from agents.data_collection.exchange.breaker import BreakerState, CircuitBreaker, FailureKind
from agents.data_collection.exchange.candles import CandleBatch
from agents.data_collection.exchange.fetcher import ResilientFetcher, failure_kind
from agents.data_collection.exchange.source import ExchangeCandleSource, SourceEvent

__all__ = [
    "Backoff",
    "BreakerState",
    "CandleBatch",
    "CircuitBreaker",
    "ExchangeCandleSource",
    "FailureKind",
    "ResilientFetcher",
    "SourceEvent",
    "failure_kind",
]
