"""Builders of crafted indicator histories for the strategy unit tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from agents.strategy.history import IndicatorHistory

START = datetime(2021, 9, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)

HistoryBuilder = Callable[..., IndicatorHistory]


def history_from(close: Any = None, **columns: Any) -> IndicatorHistory:
    """A history with 15-minute candles; ``close`` defaults to 100 on every row, None -> NaN."""
    lengths = {len(values) for values in columns.values()}
    if close is not None:
        lengths.add(len(close))
    assert len(lengths) == 1, f"columns differ in length: {lengths}"
    n = lengths.pop()
    as_array = lambda values: np.array([np.nan if v is None else v for v in values], dtype=np.float64)  # noqa: E731
    return IndicatorHistory.from_columns(
        [START + STEP * i for i in range(n)],
        as_array(close) if close is not None else np.full(n, 100.0),
        {name: as_array(values) for name, values in columns.items()},
    )


@pytest.fixture
def make_history() -> HistoryBuilder:
    return history_from
