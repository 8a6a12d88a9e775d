"""Routing keys: shapes, symbol tokens, refusal of injected words and wildcards."""

from __future__ import annotations

import pytest

from protocol import MESSAGE_TYPES, Message, topic_for, topics
from protocol.topics import TOPIC_PATTERNS
from tests.unit.test_protocol_samples import sample


def test_builders() -> None:
    assert topics.EXCHANGE == "tradebus"
    assert topics.candle("binance", "BTC/USDT", "1m") == "market.candle.binance.BTC-USDT.1m"
    assert topics.gap("binance", "ETH/USDT", "15m") == "market.gap.binance.ETH-USDT.15m"
    assert topics.indicators("BTC/USDT", "1h") == "analysis.indicators.BTC-USDT.1h"
    assert topics.signal("rsi-btc", "BTC/USDT") == "strategy.signal.rsi-btc.BTC-USDT"
    assert topics.order("BTC/USDT") == "trade.order.BTC-USDT"
    assert topics.rejection("rsi-btc", "BTC/USDT") == "risk.rejection.rsi-btc.BTC-USDT"
    assert topics.execution_report("BTC/USDT") == "execution.report.BTC-USDT"
    assert topics.position("BTC/USDT") == "portfolio.position.BTC-USDT"
    assert topics.risk_metrics() == "risk.metrics"
    assert topics.heartbeat("execution") == "agent.heartbeat.execution"
    assert topics.emergency_stop() == "control.emergency_stop"
    assert topics.emergency_stop(active=False) == "control.emergency_stop.release"
    assert topics.cancel_order() == "control.order.cancel"


def test_wildcards_and_bindings() -> None:
    assert topics.ALL_CANDLES == "market.candle.#"
    assert topics.ALL_SIGNALS == "strategy.signal.#"
    assert topics.candle_binding(timeframe="1m") == "market.candle.*.*.1m"
    assert topics.candle_binding("binance", "btc/usdt") == "market.candle.binance.BTC-USDT.*"
    assert topics.indicators_binding(symbol="BTC/USDT") == "analysis.indicators.BTC-USDT.*"
    assert topics.signal_binding() == "strategy.signal.*.*"


def test_symbol_token() -> None:
    assert topics.symbol_token("BTC/USDT") == "BTC-USDT"
    assert topics.symbol_token("btc/usdt:usdt") == "BTC-USDT_USDT"


@pytest.mark.parametrize("bad", ["BTC.X/USDT", "BTC/*", "#/USDT", "BTC /USDT", "BTC/\tUSDT", ""])
def test_bad_symbol_tokens_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        topics.symbol_token(bad)


@pytest.mark.parametrize(
    "call",
    [
        lambda: topics.signal("a.b", "BTC/USDT"),
        lambda: topics.signal("*", "BTC/USDT"),
        lambda: topics.heartbeat("risk manager"),
        lambda: topics.heartbeat("#"),
        lambda: topics.candle("bin.ance", "BTC/USDT", "1m"),
        lambda: topics.candle("binance", "BTC/USDT", "7m"),
        lambda: topics.rejection("x" * 300, "BTC/USDT"),
    ],
)
def test_bad_words_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=list(MESSAGE_TYPES))
def test_topic_for_every_message(cls: type[Message]) -> None:
    msg = sample(cls)
    key = topic_for(msg)
    words, pattern = key.split("."), TOPIC_PATTERNS[cls].split(".")
    assert len(words) == len(pattern)
    assert all(p.startswith("{") or p == w for w, p in zip(words, pattern, strict=True))
    assert not set("*# ") & set(key)


def test_topic_for_values() -> None:
    from protocol import Candle, Heartbeat, Signal

    assert topic_for(sample(Candle)) == "market.candle.binance.BTC-USDT.1m"
    assert topic_for(sample(Signal)) == "strategy.signal.rsi-btc.BTC-USDT"
    assert topic_for(sample(Heartbeat)) == "agent.heartbeat.execution"


def test_topic_for_unknown_type() -> None:
    class Custom(Message):
        SCHEMA_NAME = "custom.thing"
        SCHEMA_VERSION = 1

    with pytest.raises(TypeError, match="no topic"):
        topic_for(Custom(source="x"))


def test_engaging_and_releasing_the_stop_have_their_own_keys_and_one_binding_for_both() -> None:
    from protocol import EmergencyStop, topic_for
    from infra.bus.permissions import topic_regex
    import re

    engage = EmergencyStop(source="cli", active=True, reason="r", requested_by="me")
    release = EmergencyStop(source="cli", active=False, reason="r", requested_by="me")
    assert (topic_for(engage), topic_for(release)) == ("control.emergency_stop", "control.emergency_stop.release")
    both = re.compile(topic_regex(topics.ALL_EMERGENCY_STOP))
    assert both.match(topic_for(engage)) and both.match(topic_for(release))
