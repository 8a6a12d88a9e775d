"""Routing keys: the only place topic strings are built.

All messages go through one durable topic exchange. A routing key is dot-separated words;
every variable word passes through ``_token`` so that a symbol or id can never inject a
"." (an extra word) or a wildcard ("*", "#") into a key.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Any, Final

from protocol.envelope import Message
from protocol.messages import (
    CancelOrder,
    Candle,
    ClosePosition,
    DataGap,
    EmergencyStop,
    ExecutionReport,
    Heartbeat,
    IndicatorSnapshot,
    OrderRequest,
    PauseStrategy,
    PositionUpdate,
    RiskMetrics,
    RiskRejection,
    Signal,
    SignalsDone,
)
from protocol.types import TIMEFRAMES

__all__ = [
    "ALL_CANDLES",
    "ALL_CONTROL",
    "ALL_EXECUTION_REPORTS",
    "ALL_GAPS",
    "ALL_HEARTBEATS",
    "ALL_INDICATORS",
    "ALL_ORDERS",
    "ALL_POSITIONS",
    "ALL_REJECTIONS",
    "ALL_SIGNALS",
    "CANCEL_ORDER",
    "CLOSE_POSITION",
    "EMERGENCY_STOP",
    "EMERGENCY_STOP_RELEASE",
    "ALL_EMERGENCY_STOP",
    "EXCHANGE",
    "PARTITIONED",
    "PAUSE_STRATEGY",
    "RISK_METRICS",
    "TOPIC_PATTERNS",
    "cancel_order",
    "candle",
    "candle_binding",
    "close_position",
    "emergency_stop",
    "execution_report",
    "gap",
    "heartbeat",
    "indicators",
    "indicators_binding",
    "order",
    "partition_binding",
    "partition_of",
    "partition_word",
    "pause_strategy",
    "position",
    "rejection",
    "risk_metrics",
    "signal",
    "signal_binding",
    "signals_done",
    "SIGNALS_DONE_WORD",
    "symbol_token",
    "topic_for",
]

EXCHANGE: Final = "tradebus"

# AMQP limits a routing key to 255 bytes (shortstr).
_MAX_KEY_BYTES: Final = 255
_BAD_TOKEN = re.compile(r"[.*#\s]")

ALL_CANDLES: Final = "market.candle.#"
ALL_GAPS: Final = "market.gap.#"
ALL_INDICATORS: Final = "analysis.indicators.#"
ALL_SIGNALS: Final = "strategy.signal.#"
ALL_ORDERS: Final = "trade.order.#"
ALL_REJECTIONS: Final = "risk.rejection.#"
ALL_EXECUTION_REPORTS: Final = "execution.report.#"
ALL_POSITIONS: Final = "portfolio.position.#"
ALL_HEARTBEATS: Final = "agent.heartbeat.#"
RISK_METRICS: Final = "risk.metrics"
EMERGENCY_STOP: Final = "control.emergency_stop"
# Releasing the stop has a key of its own, so broker permissions can allow engaging without
# allowing release (the MCP server may ask for the stop; only a person lifts it).
EMERGENCY_STOP_RELEASE: Final = "control.emergency_stop.release"
ALL_EMERGENCY_STOP: Final = "control.emergency_stop.#"  # both: '#' is zero or more words
CANCEL_ORDER: Final = "control.order.cancel"
PAUSE_STRATEGY: Final = "control.strategy.pause"
CLOSE_POSITION: Final = "control.position.close"
# Matches every control command (and any added later).
ALL_CONTROL: Final = "control.#"

# Human-readable key shapes, for documentation (the message catalogue).
TOPIC_PATTERNS: Final[dict[type[Message], str]] = {
    Candle: "market.candle.{exchange}.{symbol}.{timeframe}",
    DataGap: "market.gap.{exchange}.{symbol}.{timeframe}",
    IndicatorSnapshot: "analysis.indicators.{symbol}.{timeframe}",
    Signal: "strategy.signal.{strategy_id}.{symbol}",
    SignalsDone: "strategy.signal._done.{symbol}",
    OrderRequest: "trade.order.{symbol}",
    RiskRejection: "risk.rejection.{strategy_id}.{symbol}",
    ExecutionReport: "execution.report.{symbol}",
    PositionUpdate: "portfolio.position.{symbol}",
    RiskMetrics: RISK_METRICS,
    EmergencyStop: EMERGENCY_STOP,  # a release: EMERGENCY_STOP_RELEASE (topic_for)
    CancelOrder: CANCEL_ORDER,
    PauseStrategy: PAUSE_STRATEGY,
    ClosePosition: CLOSE_POSITION,
    Heartbeat: "agent.heartbeat.{agent}",
}


def _token(value: str, what: str) -> str:
    """Refuse anything that is not exactly one literal routing-key word."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if _BAD_TOKEN.search(value):
        raise ValueError(
            f"{what} {value!r} cannot be a routing-key word: it contains '.', '*', '#' or whitespace"
        )
    return value


def _key(*words: str) -> str:
    key = ".".join(words)
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ValueError(f"routing key longer than {_MAX_KEY_BYTES} bytes: {key[:80]}...")
    return key


def symbol_token(symbol: str) -> str:
    """Routing-key word for a symbol: "BTC/USDT" -> "BTC-USDT", ":" -> "_"."""
    if not isinstance(symbol, str):
        raise ValueError(f"symbol must be a string, got {type(symbol).__name__}")
    # Upper-casing here too, so a key built from raw config matches one built from a model.
    return _token(symbol.upper().replace("/", "-").replace(":", "_"), "symbol")


def _exchange_token(exchange: str) -> str:
    return _token(exchange.lower() if isinstance(exchange, str) else exchange, "exchange")


def _timeframe_token(timeframe: str) -> str:
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    return timeframe


def candle(exchange: str, symbol: str, timeframe: str) -> str:
    """market.candle.{exchange}.{symbol}.{tf}"""
    return _key(
        "market", "candle", _exchange_token(exchange), symbol_token(symbol),
        _timeframe_token(timeframe),
    )


def gap(exchange: str, symbol: str, timeframe: str) -> str:
    """market.gap.{exchange}.{symbol}.{tf}"""
    return _key(
        "market", "gap", _exchange_token(exchange), symbol_token(symbol),
        _timeframe_token(timeframe),
    )


def indicators(symbol: str, timeframe: str) -> str:
    """analysis.indicators.{symbol}.{tf}"""
    return _key("analysis", "indicators", symbol_token(symbol), _timeframe_token(timeframe))


def signal(strategy_id: str, symbol: str) -> str:
    """strategy.signal.{strategy_id}.{symbol}"""
    return _key("strategy", "signal", _token(strategy_id, "strategy_id"), symbol_token(symbol))


# The word in a signal's strategy-id place that marks SignalsDone: a strategy id starts with a
# letter or digit, so it can never be one. On the signals' own key shape, the marker follows the
# signals into every queue bound to them, in their partition, under the same broker permission.
SIGNALS_DONE_WORD: Final = "_done"


def signals_done(symbol: str) -> str:
    """strategy.signal._done.{symbol}"""
    return _key("strategy", "signal", SIGNALS_DONE_WORD, symbol_token(symbol))


def order(symbol: str) -> str:
    """trade.order.{symbol}"""
    return _key("trade", "order", symbol_token(symbol))


def rejection(strategy_id: str, symbol: str) -> str:
    """risk.rejection.{strategy_id}.{symbol}"""
    return _key("risk", "rejection", _token(strategy_id, "strategy_id"), symbol_token(symbol))


def execution_report(symbol: str) -> str:
    """execution.report.{symbol}"""
    return _key("execution", "report", symbol_token(symbol))


def position(symbol: str) -> str:
    """portfolio.position.{symbol}"""
    return _key("portfolio", "position", symbol_token(symbol))


def risk_metrics() -> str:
    """risk.metrics"""
    return RISK_METRICS


def heartbeat(agent: str) -> str:
    """agent.heartbeat.{agent}"""
    return _key("agent", "heartbeat", _token(agent, "agent"))


def emergency_stop(active: bool = True) -> str:
    """control.emergency_stop (engage) or control.emergency_stop.release"""
    return EMERGENCY_STOP if active else EMERGENCY_STOP_RELEASE


def cancel_order() -> str:
    """control.order.cancel"""
    return CANCEL_ORDER


def pause_strategy() -> str:
    """control.strategy.pause (pause and resume: the message says which)"""
    return PAUSE_STRATEGY


def close_position() -> str:
    """control.position.close"""
    return CLOSE_POSITION


# ----------------------------------------------------------------- binding patterns
# None means "any" ("*"), so agents bind to a subset without typing a pattern inline.


def _word_or_any(value: str | None, build: Callable[[str], str]) -> str:
    return "*" if value is None else build(value)


def candle_binding(
    exchange: str | None = None, symbol: str | None = None, timeframe: str | None = None
) -> str:
    """Binding pattern for candles; e.g. candle_binding(timeframe="1m")."""
    return _key(
        "market", "candle", _word_or_any(exchange, _exchange_token),
        _word_or_any(symbol, symbol_token), _word_or_any(timeframe, _timeframe_token),
    )


def indicators_binding(symbol: str | None = None, timeframe: str | None = None) -> str:
    """Binding pattern for indicator snapshots."""
    return _key(
        "analysis", "indicators", _word_or_any(symbol, symbol_token),
        _word_or_any(timeframe, _timeframe_token),
    )


def signal_binding(strategy_id: str | None = None, symbol: str | None = None) -> str:
    """Binding pattern for signals."""
    return _key(
        "strategy", "signal", _word_or_any(strategy_id, lambda s: _token(s, "strategy_id")),
        _word_or_any(symbol, symbol_token),
    )


# ----------------------------------------------------------------- partitions
# The pipeline's messages are partitioned by symbol (decision 0025): with N > 1 partitions the
# routing key gets one more word, ``p{k}`` with k = partition_of(symbol, N), and each consuming
# role has N queues, the k-th bound to ``{pattern}.p{k}``. One symbol always lands in one queue,
# whose single active consumer keeps its order. The mapping lives here rather than in RabbitMQ's
# consistent-hash exchange: that plugin is not enabled on every broker we run on, and a
# publisher, a consumer, the broker's permissions and the docs then all read one function.
# With N = 1 keys and bindings are exactly the unpartitioned ones.

PARTITIONED: Final = (Candle, IndicatorSnapshot, Signal, SignalsDone, OrderRequest, ExecutionReport)
MAX_PARTITIONS: Final = 64
# The partition word as a regular expression (broker permissions accept it after a key).
PARTITION_WORD_REGEX: Final = r"p[0-9]+"


def partition_of(symbol: str, partitions: int) -> int:
    """The partition of ``symbol`` among ``partitions``: stable across processes, machines and
    Python versions (CRC-32 of the symbol's routing-key word, not ``hash()``, which is salted)."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"partitions must be 1..{MAX_PARTITIONS}, got {partitions}")
    return zlib.crc32(symbol_token(symbol).encode("utf-8")) % partitions


def partition_word(partition: int) -> str:
    """The routing-key word of a partition: 3 -> "p3"."""
    if not 0 <= partition < MAX_PARTITIONS:
        raise ValueError(f"partition must be 0..{MAX_PARTITIONS - 1}, got {partition}")
    return f"p{partition}"


def partition_binding(pattern: str, partition: int, partitions: int) -> str:
    """The binding of partition ``partition`` for a pattern such as ALL_CANDLES ("market.candle.#"):
    the pattern itself when there is one partition, else the pattern followed by the partition word
    ("market.candle.#.p3": '#' takes the key's own words, the last word picks the partition)."""
    if partitions == 1:
        return pattern
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} outside 0..{partitions - 1}")
    return _key(pattern, partition_word(partition))


# ----------------------------------------------------------------- message -> key

_BUILDERS: Final[dict[type[Message], Callable[[Any], str]]] = {
    Candle: lambda m: candle(m.exchange, m.symbol, m.timeframe),
    DataGap: lambda m: gap(m.exchange, m.symbol, m.timeframe),
    IndicatorSnapshot: lambda m: indicators(m.symbol, m.timeframe),
    Signal: lambda m: signal(m.strategy_id, m.symbol),
    SignalsDone: lambda m: signals_done(m.symbol),
    OrderRequest: lambda m: order(m.symbol),
    RiskRejection: lambda m: rejection(m.strategy_id, m.symbol),
    ExecutionReport: lambda m: execution_report(m.symbol),
    PositionUpdate: lambda m: position(m.symbol),
    RiskMetrics: lambda m: risk_metrics(),
    EmergencyStop: lambda m: emergency_stop(m.active),
    CancelOrder: lambda m: cancel_order(),
    PauseStrategy: lambda m: pause_strategy(),
    ClosePosition: lambda m: close_position(),
    Heartbeat: lambda m: heartbeat(m.agent),
}


def topic_for(msg: Message, partitions: int = 1) -> str:
    """The routing key to publish ``msg`` under, computed from its own fields and, for the
    partitioned messages, the number of partitions of the bus (BUS_PARTITIONS)."""
    builder = _BUILDERS.get(type(msg))
    if builder is None:
        raise TypeError(f"no topic defined for {type(msg).__name__}")
    key = builder(msg)
    if partitions == 1 or not isinstance(msg, PARTITIONED):
        return key
    return _key(key, partition_word(partition_of(msg.symbol, partitions)))
