"""Each strategy on crafted series that must, and must not, trigger it."""

from __future__ import annotations

import numpy as np
import pytest

from agents.strategy.strategies import (
    RSI_PRESETS,
    STRATEGY_KINDS,
    StrategyConfigError,
    build_strategy,
    run_strategy,
)
from protocol import SignalSide

from .conftest import HistoryBuilder

BUY, SELL, HOLD = SignalSide.BUY, SignalSide.SELL, SignalSide.HOLD


def sides(kind: str, history, **params) -> list[SignalSide]:  # type: ignore[no-untyped-def]
    return [d.side for d in run_strategy(build_strategy(kind, params), history)]


# ------------------------------------------------------------------ RSI


def test_rsi_default_thresholds(make_history: HistoryBuilder) -> None:
    history = make_history(rsi=[None, 50, 29.9, 30, 70, 70.1, 12])
    decisions = run_strategy(build_strategy("rsi", {}), history)
    assert [d.side for d in decisions] == [HOLD, HOLD, BUY, HOLD, HOLD, SELL, BUY]
    assert decisions[0].reason.startswith("warming up") and decisions[0].used == {"rsi": None}
    assert decisions[2].used == {"rsi": 29.9} and "29.90 < 30" in decisions[2].reason
    # Confidence: 0.5 at the threshold, 1.0 at the end of the scale.
    assert decisions[2].confidence == pytest.approx(0.5 + 0.5 * 0.1 / 30)
    assert decisions[5].confidence == pytest.approx(0.5 + 0.5 * 0.1 / 30)
    assert decisions[6].confidence == pytest.approx(0.5 + 0.5 * 18 / 30)
    assert all(d.confidence == 0.0 for d in decisions if d.side is HOLD)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        # RSI:          34    29    24    76    71    66
        ("aggressive", [BUY, BUY, BUY, SELL, SELL, SELL]),
        ("default", [HOLD, BUY, BUY, SELL, SELL, HOLD]),
        ("conservative", [HOLD, HOLD, BUY, SELL, HOLD, HOLD]),
    ],
)
def test_rsi_presets(make_history: HistoryBuilder, preset: str, expected: list[SignalSide]) -> None:
    assert RSI_PRESETS == {"aggressive": (35.0, 65.0), "default": (30.0, 70.0), "conservative": (25.0, 75.0)}
    assert sides("rsi", make_history(rsi=[34, 29, 24, 76, 71, 66]), preset=preset) == expected


def test_rsi_explicit_thresholds_override_the_preset(make_history: HistoryBuilder) -> None:
    history = make_history(rsi=[39, 41, 59, 61])
    assert sides("rsi", history, oversold=40, overbought=60) == [BUY, HOLD, HOLD, SELL]
    strategy = build_strategy("rsi", {"preset": "conservative", "oversold": 20})
    assert (strategy.params.oversold, strategy.params.overbought) == (20, 75)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"preset": "wild"}, "preset"),
        ({"oversold": 70, "overbought": 30}, "must be below overbought"),
        ({"oversold": -1}, "oversold"),
        ({"oversold": "low"}, "oversold"),
        ({"treshold": 3}, "treshold"),
    ],
)
def test_rsi_bad_params_are_refused_clearly(params: dict, message: str) -> None:
    with pytest.raises(StrategyConfigError, match=message) as caught:
        build_strategy("rsi", params)
    assert "rsi" in str(caught.value)


# ------------------------------------------------------------------ MACD crossover


def test_macd_cross_up_and_down(make_history: HistoryBuilder) -> None:
    history = make_history(
        macd=[None, -2.0, -1.0, 0.5, 1.0, 0.2, -0.3, -0.5],
        macd_signal=[None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    )
    decisions = run_strategy(build_strategy("macd_cross", {}), history)
    assert [d.side for d in decisions] == [HOLD, HOLD, HOLD, BUY, HOLD, HOLD, SELL, HOLD]
    assert decisions[3].used == {"macd": 0.5, "macd_signal": 0.0, "macd_prev": -1.0, "macd_signal_prev": 0.0}
    # Confidence: |0.5| against the mean |spread| of the window ending there.
    typical = np.mean([2.0, 1.0, 0.5])
    assert decisions[3].confidence == pytest.approx(0.5 + 0.5 * 0.5 / typical)
    assert 0.5 <= decisions[6].confidence <= 1.0


def test_macd_no_trigger_on_touch_or_parallel_lines(make_history: HistoryBuilder) -> None:
    # Touching the signal (0 gap) and turning back is not a cross, from either side; parallel
    # lines never cross.
    history = make_history(macd=[-1.0, 0.0, -1.0, -2.0, 0.0, 0.0, -3.0], macd_signal=[0.0] * 7)
    assert sides("macd_cross", history) == [HOLD] * 7
    history = make_history(macd=[1.0, 0.0, 2.0], macd_signal=[0.0] * 3)
    assert sides("macd_cross", history) == [HOLD] * 3
    history = make_history(macd=[1.0, 2.0, 3.0, 4.0], macd_signal=[0.5, 1.5, 2.5, 3.5])
    assert sides("macd_cross", history) == [HOLD] * 4


def test_macd_cross_through_an_exact_touch_counts_once(make_history: HistoryBuilder) -> None:
    history = make_history(macd=[-1.0, 0.0, 0.0, 0.5, 1.0], macd_signal=[0.0] * 5)
    assert sides("macd_cross", history) == [HOLD, HOLD, HOLD, BUY, HOLD]
    # Lines equal since their warm-up ended: leaving equality is a cross.
    history = make_history(macd=[None, 0.0, 0.0, -0.5], macd_signal=[None, 0.0, 0.0, 0.0])
    assert sides("macd_cross", history) == [HOLD, HOLD, HOLD, SELL]


# ------------------------------------------------------------------ Bollinger reversion


def test_bollinger_reversion(make_history: HistoryBuilder) -> None:
    history = make_history(bb_percent_b=[None, -0.1, 0.0, 0.5, 1.0, 1.2, -0.8])
    decisions = run_strategy(build_strategy("bollinger_reversion", {}), history)
    assert [d.side for d in decisions] == [HOLD, BUY, HOLD, HOLD, HOLD, SELL, BUY]
    assert decisions[1].confidence == pytest.approx(0.6)
    assert decisions[5].confidence == pytest.approx(0.7)
    assert decisions[6].confidence == 1.0  # capped
    assert decisions[0].reason.startswith("warming up")


def test_bollinger_thresholds_are_params(make_history: HistoryBuilder) -> None:
    history = make_history(bb_percent_b=[0.15, 0.25, 0.85, 0.75])
    assert sides("bollinger_reversion", history, lower=0.2, upper=0.8) == [BUY, HOLD, SELL, HOLD]
    assert sides("bollinger_reversion", history) == [HOLD] * 4
    with pytest.raises(StrategyConfigError, match="must be below upper"):
        build_strategy("bollinger_reversion", {"lower": 1, "upper": 0})


# ------------------------------------------------------------------ SMA crossover


def _cross_rows(close: np.ndarray, fast: int, slow: int) -> tuple[list[int], list[int]]:
    """Oracle: plain window means, no TA-Lib."""
    def mean(i: int, n: int) -> float:
        return float(np.mean(close[i - n + 1 : i + 1])) if i >= n - 1 else np.nan

    ups, downs = [], []
    for i in range(slow, len(close)):
        before = mean(i - 1, fast) - mean(i - 1, slow)
        after = mean(i, fast) - mean(i, slow)
        if before <= 0 < after:
            ups.append(i)
        if before >= 0 > after:
            downs.append(i)
    return ups, downs


def test_sma_cross_on_its_own_periods(make_history: HistoryBuilder) -> None:
    close = np.array([10.0] * 6 + [9, 8, 7, 8, 10, 12, 14, 13, 11, 9, 7, 6, 6, 6])
    history = make_history(close=close)
    decisions = run_strategy(build_strategy("sma_cross", {"fast": 2, "slow": 4}), history)
    ups, downs = _cross_rows(close, 2, 4)
    assert ups and downs
    assert [i for i, d in enumerate(decisions) if d.side is BUY] == ups
    assert [i for i, d in enumerate(decisions) if d.side is SELL] == downs
    assert all(d.reason.startswith("warming up") for d in decisions[:4])
    assert set(decisions[ups[0]].used) == {"sma_2", "sma_4", "sma_2_prev", "sma_4_prev"}
    assert decisions[ups[0]].used["sma_2"] == pytest.approx(np.mean(close[ups[0] - 1 : ups[0] + 1]))


def test_sma_cross_not_triggered_by_a_steady_trend(make_history: HistoryBuilder) -> None:
    history = make_history(close=np.linspace(100, 200, 120))
    assert set(sides("sma_cross", history)) == {HOLD}  # fast stays above slow: no cross, ever
    assert set(sides("sma_cross", make_history(close=np.linspace(200, 100, 120)))) == {HOLD}


def test_sma_cross_defaults_and_validation() -> None:
    strategy = build_strategy("sma_cross", {})
    assert (strategy.params.fast, strategy.params.slow) == (20, 50)
    with pytest.raises(StrategyConfigError, match="fast .* must be shorter than slow"):
        build_strategy("sma_cross", {"fast": 50, "slow": 20})


# ------------------------------------------------------------------ COMBINED

MEMBERS = [{"kind": "rsi"}, {"kind": "bollinger_reversion"}]


def test_combined_agreement_trades_with_confidence_from_the_vote(make_history: HistoryBuilder) -> None:
    history = make_history(rsi=[20.0], bb_percent_b=[-0.2])
    decision = build_strategy("combined", {"members": MEMBERS}).decide(history, 0)
    rsi_conf, bb_conf = 0.5 + 0.5 * 10 / 30, 0.7
    assert decision.side is BUY
    assert decision.confidence == pytest.approx((rsi_conf + bb_conf) / 2)
    assert decision.used["rsi.vote"] == pytest.approx(rsi_conf) and decision.used["rsi.rsi"] == 20.0
    assert "rsi BUY" in decision.reason and "bollinger_reversion BUY" in decision.reason


def test_combined_disagreement_holds(make_history: HistoryBuilder) -> None:
    history = make_history(rsi=[20.0], bb_percent_b=[1.2])  # RSI says BUY, Bollinger says SELL
    decision = build_strategy("combined", {"members": MEMBERS}).decide(history, 0)
    assert decision.side is HOLD and decision.confidence == 0.0
    assert decision.reason.startswith("members disagree")
    # A heavily outweighed opponent is tolerated up to max_disagreement.
    weighted = build_strategy("combined", {"members": [{"kind": "rsi", "weight": 10}, {"kind": "bollinger_reversion"}], "max_disagreement": 0.3})
    assert weighted.decide(history, 0).side is BUY


def test_combined_weak_vote_holds_and_hold_members_dilute(make_history: HistoryBuilder) -> None:
    history = make_history(rsi=[29.0], bb_percent_b=[0.5], macd=[1.0], macd_signal=[2.0])
    members = [*MEMBERS, {"kind": "macd_cross"}]
    decision = build_strategy("combined", {"members": members, "min_score": 0.2}).decide(history, 0)
    assert decision.side is HOLD and "weaker than" in decision.reason  # (0.5+1/60)/3 < 0.2
    assert build_strategy("combined", {"members": members, "min_score": 0.1}).decide(history, 0).side is BUY
    nobody = make_history(rsi=[50.0], bb_percent_b=[0.5])
    assert build_strategy("combined", {"members": MEMBERS}).decide(nobody, 0).reason == "no member votes BUY or SELL"


def test_combined_member_errors_name_the_member() -> None:
    with pytest.raises(StrategyConfigError, match=r"members\.1: .*unknown strategy kind 'nope'"):
        build_strategy("combined", {"members": [{"kind": "rsi"}, {"kind": "nope"}]})
    with pytest.raises(StrategyConfigError, match=r"members\.0: .*oversold"):
        build_strategy("combined", {"members": [{"kind": "rsi", "params": {"oversold": 99}}, {"kind": "rsi"}]})
    with pytest.raises(StrategyConfigError, match="cannot be a member"):
        build_strategy("combined", {"members": [{"kind": "combined", "params": {}}, {"kind": "rsi"}]})
    with pytest.raises(StrategyConfigError, match="members"):
        build_strategy("combined", {"members": [{"kind": "rsi"}]})  # a vote needs two


def test_duplicate_member_kinds_get_distinct_labels(make_history: HistoryBuilder) -> None:
    strategy = build_strategy("combined", {"members": [{"kind": "rsi", "params": {"preset": "aggressive"}}, {"kind": "rsi"}]})
    decision = strategy.decide(make_history(rsi=[33.0]), 0)
    assert decision.used["rsi_1.vote"] > 0 and decision.used["rsi_2.vote"] == 0.0


# ------------------------------------------------------------------ registry


def test_registry_kinds_and_unknown_kind() -> None:
    assert set(STRATEGY_KINDS) == {"rsi", "macd_cross", "bollinger_reversion", "sma_cross", "combined"}
    with pytest.raises(StrategyConfigError, match="unknown strategy kind 'momentum'; known kinds: rsi"):
        build_strategy("momentum", {})
    with pytest.raises(StrategyConfigError, match="must be a table"):
        build_strategy("rsi", ["oversold", 20])  # type: ignore[arg-type]


def test_a_negative_row_is_refused(make_history: HistoryBuilder) -> None:
    history = make_history(rsi=[50.0, 20.0])
    for kind in ("rsi", "macd_cross", "bollinger_reversion", "sma_cross"):
        with pytest.raises(IndexError):
            build_strategy(kind, {}).decide(history, -1)
        with pytest.raises(IndexError):
            build_strategy(kind, {}).decide(history, 2)
