"""``compute_columns(..., only=...)``: just the requested indicators, each identical to its
column in the full computation (a backtest computes what its strategy reads)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.technical_analysis.indicators import COLUMNS, IndicatorParams, compute_columns, rolling_columns
from tests.unit.technical_analysis.reference import Series

PARAMS = IndicatorParams()


def test_each_subset_equals_the_full_columns(btc: Series) -> None:
    full = compute_columns(*btc.columns(), PARAMS)
    subsets = [(), ("rsi",), ("macd_signal",), ("bb_percent_b", "bb_lower", "bb_upper"), ("vwap", "obv", "stoch_d"), COLUMNS]
    for subset in subsets:
        some = compute_columns(*btc.columns(), PARAMS, only=subset)
        assert tuple(some) == tuple(name for name in COLUMNS if name in subset)  # protocol order
        for name in subset:
            assert some[name].tobytes() == full[name].tobytes(), name
    assert tuple(compute_columns(*btc.columns(), PARAMS, only=None)) == COLUMNS


def test_unknown_columns_and_bad_parameters_are_refused(btc: Series) -> None:
    with pytest.raises(ValueError, match="unknown indicator column 'smx_200'"):
        compute_columns(*btc.columns(0, 50), PARAMS, only={"rsi", "smx_200"})
    with pytest.raises(ValueError, match="'sma_1': sma: period must be within 2..10000, got 1"):
        compute_columns(*btc.columns(0, 50), PARAMS, only={"rsi", "sma_1"})


def test_rolling_columns_honour_only(btc: Series) -> None:
    params = IndicatorParams(window=60)
    columns = btc.columns(0, 120)
    some = rolling_columns(*columns, params, only={"rsi", "macd"})
    full = rolling_columns(*columns, params)
    assert set(some) == {"rsi", "macd"}
    np.testing.assert_array_equal(some["rsi"], full["rsi"])
    np.testing.assert_array_equal(some["macd"], full["macd"])
    assert rolling_columns(*columns, params, only=()) == {}
