"""The on-change rule (duplicate suppression, HOLD as a side) and the Signal message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from agents.strategy.history import IndicatorHistory
from agents.strategy.signals import build_signal, change_at, wire_decimal
from agents.strategy.strategies import Decision, build_strategy, is_change, on_change, run_strategy
from protocol import IndicatorSnapshot, Indicators, Signal, SignalSide, decode, encode, topic_for

from .conftest import HistoryBuilder

BUY, SELL, HOLD = SignalSide.BUY, SignalSide.SELL, SignalSide.HOLD


def d(side: SignalSide) -> Decision:
    return Decision(side, 0.5 if side is not HOLD else 0.0, side.value, {})


def test_a_repeated_side_is_not_sent_again_and_hold_counts_as_a_side() -> None:
    decisions = [d(HOLD), d(BUY), d(BUY), d(BUY), d(HOLD), d(HOLD), d(BUY), d(SELL), d(SELL)]
    assert [(i, x.side) for i, x in on_change(decisions)] == [
        (0, HOLD), (1, BUY), (4, HOLD), (6, BUY), (7, SELL),
    ]
    assert is_change(None, d(BUY)) and not is_change(d(BUY), d(BUY)) and is_change(d(BUY), d(HOLD))
    assert on_change([]) == []
    assert [i for i, _ in on_change(decisions[3:], start_index=3)] == [3, 4, 6, 7]


def test_change_at_matches_on_change_over_a_whole_history(make_history: HistoryBuilder) -> None:
    rng = np.random.default_rng(7)
    history = make_history(rsi=list(rng.uniform(10, 90, 200)), bb_percent_b=list(rng.uniform(-0.5, 1.5, 200)))
    for kind in ("rsi", "bollinger_reversion"):
        strategy = build_strategy(kind, {})
        expected = on_change(run_strategy(strategy, history))
        live = [(i, decision) for i in range(len(history)) if (decision := change_at(strategy, history, i)) is not None]
        assert live == expected and len(expected) > 10


def test_change_at_does_not_judge_rows_too_close_to_a_cut_off_start() -> None:
    # The history no longer starts at the series' first candle: rows within the lookback of its
    # start cannot be compared with what the uninterrupted run saw, so nothing is published.
    n = 120
    history = IndicatorHistory.from_columns(np.arange(n) * 900_000, 100 + np.sin(np.arange(n) / 5) * 10, max_length=80)
    strategy = build_strategy("sma_cross", {"fast": 3, "slow": 10, "strength_window": 5})
    assert not history.complete and strategy.lookback == 14
    assert all(change_at(strategy, history, i) is None for i in range(strategy.lookback + 1))
    full = IndicatorHistory.from_columns(np.arange(n) * 900_000, 100 + np.sin(np.arange(n) / 5) * 10)
    offset = n - 80
    for i in range(strategy.lookback + 1, 80):
        assert change_at(strategy, history, i) == change_at(strategy, full, i + offset)


def snapshot() -> IndicatorSnapshot:
    return IndicatorSnapshot(
        source="technical_analysis", exchange="binance", symbol="BTC/USDT", timeframe="15m",
        candle_time=datetime(2021, 9, 1, tzinfo=UTC) + timedelta(minutes=15), close=Decimal("47012.5"),
        indicators=Indicators(rsi=Decimal("24.5")),
    )


def test_build_signal_carries_the_decision_and_a_deterministic_id() -> None:
    snap = snapshot()
    used = {"rsi": 24.5, "macd": 0.1 + 0.2, "sma_50": None}
    decision = Decision(BUY, 0.5916666666666667, "RSI 24.50 < 30 (oversold)", used)
    signal = build_signal(snap, strategy_id="rsi-default", kind="rsi", decision=decision)
    assert (signal.strategy_id, signal.strategy, signal.side, signal.confidence) == ("rsi-default", "rsi", BUY, decision.confidence)
    assert (signal.exchange, signal.symbol, signal.timeframe) == ("binance", "BTC/USDT", "15m")
    assert signal.candle_time == snap.candle_time and signal.price == snap.close
    assert signal.reason == decision.reason and signal.source == "strategy"
    assert signal.indicators == {"rsi": Decimal("24.5"), "macd": Decimal("0.30000000000000004"), "sma_50": None}
    assert float(signal.indicators["macd"]) == used["macd"]  # the identical float comes back
    assert signal.causation_id == snap.message_id and signal.correlation_id == snap.correlation_id
    again = build_signal(snap, strategy_id="rsi-default", kind="rsi", decision=decision)
    other = build_signal(snap, strategy_id="rsi-aggressive", kind="rsi", decision=decision)
    assert again.message_id == signal.message_id != other.message_id
    assert topic_for(signal) == "strategy.signal.rsi-default.BTC-USDT"
    assert decode(encode(signal), Signal) == signal


def test_wire_decimal() -> None:
    assert wire_decimal(None) is None and wire_decimal(float("nan")) is None and wire_decimal(float("inf")) is None
    assert wire_decimal(1.5e-7) == Decimal("1.5E-7") and float(wire_decimal(1.5e-7)) == 1.5e-7  # type: ignore[arg-type]
    assert wire_decimal(1e-300) == 0  # would not fit the wire format; zero for every purpose
    assert wire_decimal(-0.0) == 0
