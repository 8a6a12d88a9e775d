"""Whole-column helpers the strategies use for speed give the very floats of the per-row code:
window sums in numpy's own summation order, confidences from precomputed spreads, candidate
rows that cover every BUY/SELL, and history columns created only when read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from agents.strategy.history import INDICATOR_FIELDS, IndicatorHistory
from agents.strategy.strategies import build_strategy
from agents.strategy.strategies.base import HOLD, abs_spread, cross_confidence, window_sums
from agents.strategy.strategies.sma import sma

rng = np.random.default_rng(20211201)

SERIES = {
    "prices": rng.random(700) * 1e4 + rng.standard_normal(700) * 1e-3,
    "wide magnitudes": rng.standard_normal(700) * 10.0 ** rng.integers(-6, 9, 700),
    "cents": np.round(rng.random(700) * 5e4, 2),
    "signed zeros": np.where(rng.random(700) < 0.3, -0.0, rng.standard_normal(700)),
}
PERIODS = [*range(1, 20), 31, 50, 64, 127, 128, 129, 135, 200, 256, 257, 300, 513, 700]


@pytest.mark.parametrize("name", SERIES)
def test_window_sums_are_numpys_sums_bit_for_bit(name: str) -> None:
    values = SERIES[name]
    for period in PERIODS:
        expected = np.add.reduce(sliding_window_view(values, period), axis=1)
        got = window_sums(values, period)
        assert got.tobytes() == expected.tobytes(), period
        # ... and each equals the plain sum of its own slice (what cross_confidence averages).
        for k in (0, len(got) // 2, len(got) - 1):
            assert got[k].tobytes() == np.add.reduce(values[k : k + period]).tobytes()
    assert window_sums(values[:3], 5).size == 0


def test_sma_is_the_mean_of_each_window() -> None:
    close = SERIES["prices"]
    history = IndicatorHistory.from_columns(np.arange(close.size) * 60_000, close)
    for period in (2, 10, 30, 200):
        averages = sma(history, period)
        assert np.isnan(averages[: period - 1]).all()
        assert averages[period - 1 :].tobytes() == sliding_window_view(close, period).mean(axis=1).tobytes()


def _mean_confidence(fast: np.ndarray, slow: np.ndarray, i: int, window: int) -> float:
    """The definition, written plainly: |gap at i| over the NaN-free mean |gap| of the window."""
    recent = np.abs(fast[max(0, i - window + 1) : i + 1] - slow[max(0, i - window + 1) : i + 1])
    recent = recent[~np.isnan(recent)]
    typical = float(recent.mean()) if recent.size else 0.0
    if not typical > 0.0:
        return 0.5
    return min(1.0, 0.5 + 0.5 * min(1.0, abs(fast[i] - slow[i]) / typical))


def test_confidence_from_precomputed_spreads_is_the_same_float() -> None:
    fast = SERIES["prices"].copy()
    slow = fast + rng.standard_normal(fast.size) * 5
    fast[:40] = np.nan  # warming up: windows with NaN rows skip them
    slow[100:103] = np.nan  # a hole in the middle
    spread = abs_spread(fast, slow)
    for window in (1, 7, 26, 50, 129):
        sums = window_sums(spread, window)
        for i in range(fast.size):
            plain = cross_confidence(fast, slow, i, window)
            if fast[i] == fast[i] and slow[i] == slow[i]:
                assert plain == _mean_confidence(fast, slow, i, window)
            assert cross_confidence(fast, slow, i, window, spread=spread) == plain
            assert cross_confidence(fast, slow, i, window, spread=spread, spread_sums=sums) == plain


def _history(close: np.ndarray) -> IndicatorHistory:
    from agents.technical_analysis.indicators import IndicatorParams, compute_columns

    n = close.size
    times = np.arange(n, dtype=np.int64) * 900_000 + 1_630_454_400_000
    columns = compute_columns(times, close, close + 1, close - 1, close, np.ones(n), IndicatorParams())
    return IndicatorHistory.from_columns(times, close, columns)


@pytest.mark.parametrize("kind, params", [
    ("sma_cross", {"fast": 3, "slow": 7, "strength_window": 5}),
    ("macd_cross", {}),
    ("rsi", {"preset": "aggressive"}),
    ("bollinger_reversion", {"lower": 0.2, "upper": 0.8}),
    ("combined", {"members": [{"kind": "rsi"}, {"kind": "sma_cross", "params": {"fast": 2, "slow": 3}}], "min_score": 0.1}),
])
def test_candidate_rows_cover_every_buy_and_sell(kind: str, params: dict[str, object]) -> None:
    # Whole-number closes repeat often: averages tie and touch, the edge cases of a crossover.
    close = (30000 + np.cumsum(rng.choice([-2, -1, 0, 0, 0, 1, 2], size=1500))).astype(np.float64)
    history = _history(close)
    strategy = build_strategy(kind, params)
    mask = strategy.candidate_rows(history)
    assert mask is not None and mask.shape == (len(history),)
    trading = [i for i in range(len(history)) if strategy.decide(history, i).side is not HOLD]
    assert trading, "the series should make the strategy trade"
    assert mask[trading].all()


def test_history_columns_never_given_are_nan_until_written() -> None:
    start = datetime(2021, 9, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=15) * i for i in range(5)]
    history = IndicatorHistory.from_columns(times, [1.0, 2, 3, 4, 5], {"rsi": [np.nan, 50, 51, 52, 53]})
    assert np.isnan(history.col("macd")).all() and history.col("macd").size == 5
    assert history.col("rsi")[1] == 50
    with pytest.raises(KeyError):
        history.col("nope")
    # Appending (the live agent's way) writes every column; older rows stay NaN where never given.
    history.append_row(history.last_time_ms + 900_000, 6.0, {"macd": 1.5, "atr": None})  # type: ignore[operator]
    assert history.col("macd").tolist()[-1] == 1.5 and np.isnan(history.col("macd")[:5]).all()
    assert np.isnan(history.col("atr")).all() and history.col("rsi")[-1] != history.col("rsi")[-1]
    assert set(history.row(5)) == {"close", *INDICATOR_FIELDS}
    bounded = IndicatorHistory(max_length=3)
    for k in range(10):  # compaction moves only the buffers that exist
        bounded.append_row(k * 900_000, float(k), {"rsi": float(k)} if k % 2 else {})
    np.testing.assert_array_equal(bounded.col("rsi"), [7.0, np.nan, 9.0])
    assert np.isnan(bounded.col("ema_fast")).all() and bounded.col("close").tolist() == [7.0, 8.0, 9.0]
