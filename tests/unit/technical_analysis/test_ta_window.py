"""The rolling window: duplicates and out-of-order candles never corrupt it, a redelivered candle
gets exactly its own window back, and a window rebuilt from stored history (a restart) gives
the values of the uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest

from agents.technical_analysis.agent import snapshot_for
from agents.technical_analysis.indicators import COLUMNS, IndicatorParams, compute_columns, rolling_columns
from agents.technical_analysis.window import AddOutcome, CandleWindow, WindowView
from protocol import Candle, IndicatorSnapshot, derive_message_id
from tests.unit.technical_analysis.reference import Series

PARAMS = IndicatorParams(window=60)


def view(window: CandleWindow, candle: Candle) -> WindowView:
    result = window.view_ending_at(candle.open_time)
    assert isinstance(result, WindowView), result
    return result


def same_view(a: WindowView, b: WindowView) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.columns(), b.columns(), strict=True))


def last_row(v: WindowView) -> dict[str, float]:
    return {name: col[-1] for name, col in compute_columns(*v.columns(), PARAMS).items()}


def test_appends_only_strictly_newer_candles_and_keeps_capacity(btc: Series) -> None:
    window = CandleWindow(size=10, margin=5)
    assert window.capacity == 15 and window.newest is None
    for candle in btc.candles[:40]:
        assert window.add(candle) is AddOutcome.APPENDED
    assert len(window) == 15
    assert window.newest == btc.candles[39].open_time
    latest = view(window, btc.candles[39])
    assert len(latest) == 10
    np.testing.assert_array_equal(latest.open_time, btc.open_time[30:40])
    np.testing.assert_array_equal(latest.close, btc.close[30:40])


def test_a_duplicate_leaves_the_window_unchanged_even_with_other_values(btc: Series) -> None:
    window = CandleWindow(size=10, margin=5)
    for candle in btc.candles[:20]:
        window.add(candle)
    before = view(window, btc.candles[19])
    changed = btc.candles[19].model_copy(update={"close": btc.candles[19].close + 1, "volume": 0})
    assert window.add(btc.candles[19]) is AddOutcome.DUPLICATE
    assert window.add(changed) is AddOutcome.DUPLICATE
    assert window.add(btc.candles[15]) is AddOutcome.DUPLICATE
    assert len(window) == 15
    assert same_view(before, view(window, btc.candles[19]))


def test_an_older_candle_that_is_not_held_is_refused_and_changes_nothing(btc: Series) -> None:
    window = CandleWindow(size=10, margin=5)
    candles = [c for i, c in enumerate(btc.candles[:30]) if i != 25]  # a hole at 25
    for candle in candles:
        window.add(candle)
    before = view(window, btc.candles[29])
    assert window.add(btc.candles[25]) is AddOutcome.OUT_OF_ORDER  # filling a hole late
    assert window.add(btc.candles[2]) is AddOutcome.OUT_OF_ORDER  # older than everything held
    assert window.view_ending_at(btc.candles[25].open_time) == "candle not in the window"
    assert same_view(before, view(window, btc.candles[29]))
    assert window.add(btc.candles[30]) is AddOutcome.APPENDED


def test_a_redelivered_candle_gets_exactly_its_own_window_within_the_margin(btc: Series) -> None:
    window = CandleWindow(size=PARAMS.window, margin=8)
    seen: dict[int, WindowView] = {}
    for i, candle in enumerate(btc.candles[:200]):
        window.add(candle)
        seen[i] = view(window, candle)
    for i in range(192, 200):  # within the margin: identical window, identical values
        assert window.add(btc.candles[i]) is AddOutcome.DUPLICATE
        assert same_view(view(window, btc.candles[i]), seen[i])
    # Held, but its window's oldest candles are gone: refused with the reason.
    reason = window.view_ending_at(btc.candles[150].open_time)
    assert reason == "the older candles of its window were already evicted"


def test_a_short_window_at_the_start_of_the_history_is_exact(btc: Series) -> None:
    # Stored history holds only 30 candles: the window of candle 29 is those 30 (all of them).
    fresh = CandleWindow(size=PARAMS.window)
    fresh.seed(btc.candles[:30], complete=True)
    np.testing.assert_array_equal(view(fresh, btc.candles[29]).close, btc.close[:30])
    np.testing.assert_array_equal(view(fresh, btc.candles[10]).close, btc.close[:11])
    # Seeded from a store that holds more than was loaded: an older candle's window is unknown.
    partial = CandleWindow(size=PARAMS.window, margin=4)
    partial.seed(btc.candles[100:164], complete=False)
    assert isinstance(view(partial, btc.candles[163]), WindowView)
    assert isinstance(partial.view_ending_at(btc.candles[110].open_time), str)
    with pytest.raises(RuntimeError):
        partial.seed(btc.candles[:3], complete=True)


@pytest.mark.parametrize("restart_at", [30, 59, 60, 130, 300])
def test_a_window_rebuilt_from_history_reproduces_the_uninterrupted_values(btc: Series, restart_at: int) -> None:
    n = 360
    uninterrupted = rolling_columns(*btc.columns(0, n), PARAMS)
    live = CandleWindow(size=PARAMS.window)
    for candle in btc.candles[:restart_at]:
        live.add(candle)
    # Restart: a new window loads (as the agent does) up to `capacity` stored candles up to the
    # candle being handled, then continues with the stream.
    restarted = CandleWindow(size=PARAMS.window)
    history = btc.candles[max(0, restart_at + 1 - restarted.capacity) : restart_at + 1]
    restarted.seed(history, complete=restart_at + 1 <= restarted.capacity)
    for i in range(restart_at, n):
        candle = btc.candles[i]
        restarted.add(candle)
        live.add(candle)
        row_restarted, row_live = last_row(view(restarted, candle)), last_row(view(live, candle))
        for name in COLUMNS:
            np.testing.assert_array_equal(row_restarted[name], uninterrupted[name][i], err_msg=f"{name}[{i}]")
            np.testing.assert_array_equal(row_live[name], uninterrupted[name][i], err_msg=f"{name}[{i}]")


def test_snapshot_ids_derive_from_the_candle_only_so_a_redelivery_repeats_the_message(btc: Series) -> None:
    window = CandleWindow(size=PARAMS.window)
    for candle in btc.candles[:80]:
        window.add(candle)
    candle = btc.candles[79]
    first = snapshot_for(candle, view(window, candle), PARAMS, source="technical_analysis")
    window.add(candle)
    again = snapshot_for(candle, view(window, candle), PARAMS, source="technical_analysis")
    assert again.model_dump(exclude={"produced_at"}) == first.model_dump(exclude={"produced_at"})
    # The ids the InfluxDB store re-derives when it reads a snapshot back (no id_parts).
    assert first.message_id == derive_message_id(candle.message_id, IndicatorSnapshot.schema_id())
    assert first.causation_id == first.correlation_id == candle.message_id
    assert first.candle_time == candle.open_time and first.close == candle.close
    assert first.indicators.sma_slow is not None and first.indicators.vwap is not None
