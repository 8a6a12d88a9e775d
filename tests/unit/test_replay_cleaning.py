"""Each cleaning rule on a small crafted CSV: repaired and counted, or refused with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agents.data_collection.replay import CleanResult, Gap, clean, load_file
from agents.data_collection.replay.grid import is_aligned, next_slot, slots_between

SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "15m"}
HEADER = "time,open,high,low,close,volume"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


FIVE = [utc(2024, 1, 1, 0, m) for m in (0, 15, 30, 45)] + [utc(2024, 1, 1, 1, 0)]


def run(tmp_path: Path, *rows: str, now: datetime | None = None) -> CleanResult:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return clean(load_file(path), now=now, **SERIES)


def row(
    minute: int, o: str = "100", h: str = "110", low: str = "90", c: str = "105", v: str = "5"
) -> str:
    """One CSV line for 2024-01-01 at ``minute`` past midnight UTC."""
    return f"2024-01-01T{minute // 60:02d}:{minute % 60:02d}:00Z,{o},{h},{low},{c},{v}"


def times(result: CleanResult) -> list[datetime]:
    return [candle.open_time for candle in result.candles]


def test_exact_duplicate_dropped(tmp_path: Path) -> None:
    result = run(tmp_path, row(0), row(15), row(15), row(30))
    assert times(result) == [utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 30)]
    assert (result.report.duplicates_dropped, result.report.conflicting_duplicates) == (1, 0)
    assert result.report.refusals == []


def test_conflicting_duplicate_keeps_the_last(tmp_path: Path) -> None:
    result = run(tmp_path, row(0), row(15, v="1"), row(30), row(15, v="2"))
    assert [c.volume for c in result.candles] == [Decimal(5), Decimal(2), Decimal(5)]
    assert (result.report.duplicates_dropped, result.report.conflicting_duplicates) == (0, 1)
    # The surviving 00:15 row is the file's last, so it had to move before 00:30.
    assert result.report.reordered == 1


def test_out_of_order_rows_sorted_and_counted(tmp_path: Path) -> None:
    result = run(tmp_path, row(15), row(0), row(45), row(30), row(60))
    assert times(result) == FIVE
    assert result.report.reordered == 2


def test_one_row_from_the_future_counts_once(tmp_path: Path) -> None:
    result = run(tmp_path, row(60), row(0), row(15), row(30), row(45))
    assert result.report.reordered == 1


def test_mixed_offsets_normalised_to_utc(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "2024-01-01 01:00:00+01:00,100,110,90,105,5",  # 00:00Z
        "2024-01-01 00:15:00+00:00,100,110,90,105,5",
        "2024-01-01T00:30:00Z,100,110,90,105,5",
        "2024-01-01 00:45:00,100,110,90,105,5",  # naive: UTC
        "2023-12-31 20:00:00-05:00,100,110,90,105,5",  # 01:00Z
    )
    assert times(result) == FIVE
    assert all(t.tzinfo is UTC for t in times(result))
    assert result.report.timezone_normalised == 2
    assert result.report.reordered == 0


def test_same_instant_in_two_offsets_is_a_duplicate(tmp_path: Path) -> None:
    result = run(tmp_path, "2024-01-01 01:00:00+01:00,100,110,90,105,5", row(0))
    assert times(result) == [utc(2024, 1, 1)]
    assert result.report.duplicates_dropped == 1


def test_misaligned_bar_refused_as_partial(tmp_path: Path) -> None:
    result = run(tmp_path, row(0), "2024-01-01T00:20:02Z,100,100,100,100,0")
    assert times(result) == [utc(2024, 1, 1)]
    assert result.report.partial_bars_refused == 1
    [refusal] = result.report.refusals
    assert refusal.row == 2
    assert refusal.open_time == utc(2024, 1, 1, 0, 20, 2)
    assert refusal.reason == "not aligned to the 15m grid (partial bar)"


def test_not_closed_yet_refused_when_now_is_given(tmp_path: Path) -> None:
    rows = (row(0), row(15), row(30))
    early = run(tmp_path, *rows, now=utc(2024, 1, 1, 0, 40))
    assert times(early) == [utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 15)]
    assert early.report.not_closed_refused == 1
    [refusal] = early.report.refusals
    assert refusal.row == 3 and refusal.reason.startswith("not closed yet")
    # Closing exactly at now is closed.
    assert len(run(tmp_path, *rows, now=utc(2024, 1, 1, 0, 45)).candles) == 3
    assert len(run(tmp_path, *rows).candles) == 3


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (("abc", "110", "90", "105", "5"), "open: price must be a decimal number, got 'abc'"),
        (("100", "110", "90", "105", "1_0"), "volume: value must be a plain decimal number"),
        (("NaN", "110", "90", "105", "5"), "open: price must be a finite number, got 'NaN'"),
        (("100", "110", "90", "105", "inf"), "volume: value must be a finite number, got 'inf'"),
        (("0", "110", "90", "105", "5"), "open: price must be > 0"),
        (("100", "110", "-90", "105", "5"), "low: price must be > 0"),
        (("100", "80", "90", "85", "5"), "high must be >= low"),
        (("120", "110", "90", "105", "5"), "high must be >= open"),
        (("100", "110", "90", "115", "5"), "high must be >= close"),
        (("85", "110", "90", "105", "5"), "low must be <= open"),
        (("100", "110", "90", "88", "5"), "low must be <= close"),
        (("100", "110", "90", "105", "-1"), "volume: value must be >= 0"),
        (("100", "110", "90", "105", ""), "volume: value must be a decimal number, got ''"),
    ],
)
def test_invalid_bar_refused_with_the_models_reason(
    tmp_path: Path, cells: tuple[str, ...], reason: str
) -> None:
    result = run(tmp_path, row(0), "2024-01-01T00:15:00Z," + ",".join(cells), row(30))
    assert times(result) == [utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 30)]
    assert result.report.invalid_refused == 1
    [refusal] = result.report.refusals
    assert (refusal.row, refusal.open_time) == (2, utc(2024, 1, 1, 0, 15))
    assert refusal.reason.startswith(reason)


@pytest.mark.parametrize("text", ["yesterday", "", "2024-13-01T00:00:00Z"])
def test_unreadable_time_refused(tmp_path: Path, text: str) -> None:
    result = run(tmp_path, row(0), f"{text},100,110,90,105,5")
    assert result.report.invalid_refused == 1
    [refusal] = result.report.refusals
    assert refusal.open_time == text
    assert refusal.reason.startswith("open_time: not a readable timestamp")


def test_a_candle_closing_after_year_9999_is_refused_not_fatal(tmp_path: Path) -> None:
    # Its close time cannot be represented: that row is refused, the rest of the file loads.
    result = run(tmp_path, row(0), "9999-12-31T23:45:00Z,100,110,90,105,5", row(15))
    assert times(result) == FIVE[:2]
    assert result.report.invalid_refused == 1
    [refusal] = result.report.refusals
    assert refusal.row == 2
    assert "after the year 9999" in refusal.reason


def test_zero_volume_kept_and_counted(tmp_path: Path) -> None:
    flat_and_quiet = row(30, o="100", h="100", low="100", c="100", v="0")
    result = run(tmp_path, row(0, v="0"), row(15), flat_and_quiet)
    assert len(result.candles) == 3
    assert result.report.zero_volume == 2
    assert result.report.refusals == []


def test_gap_reported_not_filled(tmp_path: Path) -> None:
    result = run(tmp_path, row(0), row(15), row(60), row(75), row(120))
    assert len(result.candles) == 5
    assert result.report.gaps == [
        Gap(utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1, 0), 2),
        Gap(utc(2024, 1, 1, 1, 30), utc(2024, 1, 1, 2, 0), 2),
    ]
    assert result.report.missing_candles == 4


def test_report_summary_and_dict(tmp_path: Path) -> None:
    result = run(tmp_path, row(0), row(0), row(45), "2024-01-01T00:50:00Z,1,1,1,1,0")
    summary = result.report.summary()
    assert "\n" not in summary
    assert "4 rows -> 2 candles" in summary and "1 gaps (2 missing candles" in summary
    data = json.loads(json.dumps(result.report.as_dict()))
    assert data["duplicates_dropped"] == 1 and data["partial_bars_refused"] == 1
    assert data["gaps"] == [
        {"start": "2024-01-01T00:15:00+00:00", "end": "2024-01-01T00:45:00+00:00", "missing": 2}
    ]
    assert data["refusals"][0]["row"] == 4
    assert "symbol" not in data  # the caller logs the series identity itself


def test_bad_series_arguments_raise() -> None:
    with pytest.raises(ValueError, match="timeframe"):
        clean([], exchange="binance", symbol="BTC/USDT", timeframe="7m")
    with pytest.raises(ValueError):
        clean([], exchange="binance", symbol="btcusdt", timeframe="15m")
    with pytest.raises(ValueError, match="aware"):
        clean([], now=datetime(2024, 1, 1), **SERIES)  # noqa: DTZ001 - naive on purpose


def test_empty_input_gives_an_empty_series() -> None:
    result = clean([], **SERIES)
    assert result.candles == [] and result.report.rows_read == 0 and result.report.gaps == []


def test_grid_rules() -> None:
    assert is_aligned(utc(2024, 1, 1, 4), "4h") and not is_aligned(utc(2024, 1, 1, 2), "4h")
    assert is_aligned(utc(2024, 1, 1), "1w")  # a Monday
    assert not is_aligned(utc(2024, 1, 4), "1w")  # a Thursday, where epoch multiples fall
    assert slots_between(utc(2024, 1, 1), utc(2024, 1, 22), "1w") == 2
    assert is_aligned(utc(2024, 2, 1), "1M") and not is_aligned(utc(2024, 2, 2), "1M")
    assert next_slot(utc(2024, 12, 1), "1M") == utc(2025, 1, 1)
    assert slots_between(utc(2024, 11, 1), utc(2025, 2, 1), "1M") == 2
    assert next_slot(utc(2024, 1, 1), "15m") - utc(2024, 1, 1) == timedelta(minutes=15)
