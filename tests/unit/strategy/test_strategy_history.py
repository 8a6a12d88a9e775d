"""IndicatorHistory: columns from arrays or snapshots, bounded appends, no rewriting of the past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from agents.strategy.history import COLUMNS, INDICATOR_FIELDS, IndicatorHistory, epoch_ms
from protocol import IndicatorSnapshot, Indicators

START = datetime(2021, 9, 1, tzinfo=UTC)


def snapshot(i: int, rsi: float | None = None, close: str = "100.5") -> IndicatorSnapshot:
    return IndicatorSnapshot(
        source="test", exchange="binance", symbol="BTC/USDT", timeframe="15m",
        candle_time=START + timedelta(minutes=15 * i), close=Decimal(close),
        indicators=Indicators(rsi=None if rsi is None else Decimal(repr(rsi))),
    )


def test_columns_are_every_indicator_plus_close() -> None:
    assert COLUMNS == ("close", *Indicators.model_fields)
    history = IndicatorHistory.from_columns([0, 900_000], [1.0, 2.0], {"rsi": [np.nan, 40.0]})
    assert len(history) == 2
    assert np.isnan(history.col("macd")).all()  # a column not given is all warm-up
    assert history.col("rsi").item(1) == 40.0
    assert history.row(0)["rsi"] is None and history.row(1)["close"] == 2.0
    assert list(history.times) == [0, 900_000]


def test_from_columns_refuses_unknown_names_bad_lengths_and_unsorted_times() -> None:
    with pytest.raises(ValueError, match="unknown indicator columns"):
        IndicatorHistory.from_columns([0], [1.0], {"rsi14": [1.0]})
    with pytest.raises(ValueError, match="shape"):
        IndicatorHistory.from_columns([0, 1], [1.0, 2.0], {"rsi": [1.0]})
    with pytest.raises(ValueError, match="strictly increasing"):
        IndicatorHistory.from_columns([5, 5], [1.0, 2.0])


def test_times_as_datetimes_or_datetime64_agree() -> None:
    moments = [START, START + timedelta(minutes=15)]
    a = IndicatorHistory.from_columns(moments, [1.0, 2.0])
    b = IndicatorHistory.from_columns(np.array(["2021-09-01T00:00", "2021-09-01T00:15"], dtype="datetime64[ms]"), [1.0, 2.0])
    assert list(a.times) == list(b.times) == [epoch_ms(m) for m in moments]
    assert a.candle_time(1) == moments[1]


def test_snapshot_values_come_back_as_the_identical_floats() -> None:
    value = 0.1 + 0.2  # not representable in short decimal form
    history = IndicatorHistory(max_length=10)
    history.append(snapshot(0, rsi=value, close="47123.45"))
    assert history.col("rsi").item(0) == value
    assert history.col("close").item(0) == 47123.45
    assert np.isnan(history.col("macd").item(0))


def test_append_refuses_a_candle_that_is_not_newer() -> None:
    history = IndicatorHistory(max_length=10)
    history.append(snapshot(1, rsi=50.0))
    version = history.version
    with pytest.raises(ValueError, match="not newer"):
        history.append(snapshot(1, rsi=10.0))
    with pytest.raises(ValueError, match="not newer"):
        history.append(snapshot(0, rsi=10.0))
    assert history.version == version and history.col("rsi").item(0) == 50.0
    assert history.index_of(epoch_ms(START + timedelta(minutes=15))) == 0
    assert history.index_of(epoch_ms(START)) is None
    assert not history.accepts(START) and history.accepts(START + timedelta(minutes=30))


def test_bounded_history_keeps_the_newest_rows_and_stays_contiguous() -> None:
    history = IndicatorHistory(max_length=5)
    for i in range(23):  # several compactions of the 10-row buffer
        history.append(snapshot(i, rsi=float(i)))
        assert len(history) == min(i + 1, 5)
    assert list(history.col("rsi")) == [18.0, 19.0, 20.0, 21.0, 22.0]
    assert history.col("rsi").flags.c_contiguous
    assert not history.complete  # row 0 is no longer the series' first candle
    assert history.candle_time(0) == START + timedelta(minutes=15 * 18)


def test_unbounded_history_grows() -> None:
    history = IndicatorHistory()
    for i in range(300):
        history.append_row(i, float(i), {"rsi": float(i)})
    assert len(history) == 300 and history.complete
    assert history.col("close").item(299) == 299.0 and history.col("rsi").item(0) == 0.0


def test_columns_are_read_only() -> None:
    history = IndicatorHistory.from_columns([0, 1], [1.0, 2.0])
    with pytest.raises(ValueError):
        history.col("close")[0] = 5.0


def test_derived_cache_is_dropped_when_the_history_changes() -> None:
    history = IndicatorHistory(max_length=10)
    history.append(snapshot(0, rsi=1.0))
    calls = []

    def compute() -> np.ndarray:
        calls.append(len(history))
        return history.col("close") * 2

    first = history.derived("double", compute)
    assert history.derived("double", compute) is first and calls == [1]
    history.append(snapshot(1, rsi=2.0))
    assert len(history.derived("double", compute)) == 2 and calls == [1, 2]


def test_from_snapshots_skips_duplicates_and_older_ones() -> None:
    history = IndicatorHistory.from_snapshots([snapshot(0, 1.0), snapshot(2, 3.0), snapshot(2, 9.0), snapshot(1, 2.0)])
    assert list(history.col("rsi")) == [1.0, 3.0]


def test_from_columns_with_a_bound_keeps_the_tail() -> None:
    history = IndicatorHistory.from_columns(np.arange(10), np.arange(10.0), {"rsi": np.arange(10.0)}, max_length=4)
    assert list(history.col("rsi")) == [6.0, 7.0, 8.0, 9.0] and not history.complete
    history.append_row(10, 10.0, {"rsi": 10.0})
    assert list(history.col("rsi")) == [7.0, 8.0, 9.0, 10.0]
    assert set(INDICATOR_FIELDS) <= set(COLUMNS)
