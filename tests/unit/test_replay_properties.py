"""Property: shuffling and duplicating the rows of a valid series never changes its cleaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.data_collection.replay import RawBar, clean

SERIES = {"exchange": "binance", "symbol": "ETH/USDT", "timeframe": "15m"}
STEP = timedelta(minutes=15)
START = datetime(2022, 3, 1, tzinfo=UTC)

cents = st.integers(min_value=1, max_value=10_000_000).map(lambda n: Decimal(n).scaleb(-2))


@st.composite
def valid_bar(draw: st.DrawFn, row: int, open_time: datetime) -> RawBar:
    low = draw(cents)
    high = low + draw(cents) - Decimal("0.01")
    ticks = st.integers(min_value=0, max_value=int((high - low) * 100))
    inside = ticks.map(lambda n: low + Decimal(n).scaleb(-2))
    volume = draw(st.sampled_from([Decimal(0), Decimal("0.001"), Decimal("12.5"), Decimal(1000)]))
    offset = draw(st.sampled_from([None, timedelta(0)]))
    return RawBar(row, open_time, draw(inside), high, low, draw(inside), volume, offset)


@st.composite
def valid_series(draw: st.DrawFn) -> list[RawBar]:
    # Increasing slots with random holes, so gaps are part of what must survive.
    steps = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=25))
    bars, slot = [], 0
    for row, step in enumerate(steps, start=1):
        slot += step
        bars.append(draw(valid_bar(row, START + slot * STEP)))
    return bars


@settings(max_examples=60, deadline=None)
@given(series=valid_series(), data=st.data())
def test_permutation_and_duplication_clean_back_to_the_series(
    series: list[RawBar], data: st.DataObject
) -> None:
    reference = clean(series, **SERIES)
    shuffled = list(data.draw(st.permutations(series)))
    copies = data.draw(st.lists(st.sampled_from(series), max_size=len(series) * 2))
    for copy in copies:
        shuffled.insert(data.draw(st.integers(min_value=0, max_value=len(shuffled))), copy)

    result = clean(shuffled, **SERIES)

    assert result.candles == reference.candles
    assert [c.message_id for c in result.candles] == [c.message_id for c in reference.candles]
    assert result.report.duplicates_dropped == len(copies)
    assert result.report.conflicting_duplicates == 0
    assert result.report.refusals == []
    assert result.report.gaps == reference.report.gaps
    assert reference.report.reordered == 0
