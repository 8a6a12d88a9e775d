"""A decision at candle i uses rows <= i only, and confidences stay in [0, 1].

Hypothesis draws histories and a row i, changes every later row, and checks that no decision
up to i moves — for every kind, including the vectorised SMA and the combined vote.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.strategy.history import IndicatorHistory
from agents.strategy.strategies import build_strategy, run_strategy
from protocol import SignalSide

KINDS: list[tuple[str, dict[str, Any]]] = [
    ("rsi", {}),
    ("rsi", {"preset": "aggressive"}),
    ("macd_cross", {"strength_window": 3}),
    ("bollinger_reversion", {}),
    ("sma_cross", {"fast": 2, "slow": 5, "strength_window": 4}),
    ("combined", {"members": [{"kind": "rsi"}, {"kind": "bollinger_reversion"}, {"kind": "macd_cross", "weight": 0.5},
                              {"kind": "sma_cross", "params": {"fast": 2, "slow": 4}}], "min_score": 0.1}),
]

value = st.one_of(st.none(), st.floats(-3, 3, allow_nan=False))


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], int]:
    n = draw(st.integers(2, 40))
    warm = draw(st.integers(0, n))

    def column(low: float, high: float) -> np.ndarray:
        values = draw(st.lists(st.floats(low, high, allow_nan=False), min_size=n, max_size=n))
        array = np.array(values, dtype=np.float64)
        array[:warm] = np.nan
        return array

    # Small integer-ish ranges make exact touches and crosses common.
    columns = {
        "close": np.array(draw(st.lists(st.sampled_from([98.0, 99.0, 100.0, 101.0, 102.0]), min_size=n, max_size=n))),
        "rsi": column(0, 100),
        "macd": np.round(column(-2, 2)),
        "macd_signal": np.round(column(-2, 2)),
        "bb_percent_b": column(-1, 2),
    }
    return columns, draw(st.integers(0, n - 1))


def build(columns: dict[str, np.ndarray]) -> IndicatorHistory:
    n = len(columns["close"])
    return IndicatorHistory.from_columns(np.arange(n) * 900_000, columns["close"], {k: v for k, v in columns.items() if k != "close"})


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.randoms(use_true_random=False))
def test_changing_future_rows_never_moves_a_past_decision(drawn: tuple[dict[str, np.ndarray], int], rnd: Any) -> None:
    columns, i = drawn
    future = {name: values.copy() for name, values in columns.items()}
    for name, values in future.items():
        for row in range(i + 1, len(values)):
            values[row] = rnd.choice([np.nan, 98.0, 102.0, -5.0, 0.0, 55.0, 1e6]) if name != "close" else rnd.choice([50.0, 150.0])
    original, changed = build(columns), build(future)
    for kind, params in KINDS:
        strategy = build_strategy(kind, params)
        before = run_strategy(strategy, original, stop=i + 1)
        after = run_strategy(strategy, changed, stop=i + 1)
        assert before == after, f"{kind} {params}: a decision at or before row {i} depends on a later row"
        # The same rows decided one at a time (as the live agent does) agree too.
        assert [strategy.decide(changed, row) for row in range(i + 1)] == after


@settings(max_examples=50, deadline=None)
@given(histories())
def test_confidence_is_in_unit_interval_and_zero_for_hold(drawn: tuple[dict[str, np.ndarray], int]) -> None:
    history = build(drawn[0])
    for kind, params in KINDS:
        for decision in run_strategy(build_strategy(kind, params), history):
            assert 0.0 <= decision.confidence <= 1.0
            assert decision.side is not SignalSide.HOLD or decision.confidence == 0.0
            assert decision.reason
            assert all(v is None or np.isfinite(v) for v in decision.used.values())
