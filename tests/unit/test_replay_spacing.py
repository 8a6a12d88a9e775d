"""The timeframe read from a series' spacing, and a given timeframe the data contradicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.data_collection.replay import ReplayDataError, infer_timeframe, load_and_clean

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _times(step: timedelta, n: int) -> list[datetime]:
    return [T0 + i * step for i in range(n)]


@pytest.mark.parametrize(
    ("step", "expected"),
    [(timedelta(minutes=1), "1m"), (timedelta(minutes=15), "15m"), (timedelta(hours=1), "1h"),
     (timedelta(hours=4), "4h"), (timedelta(days=1), "1d"), (timedelta(weeks=1), "1w")],
)
def test_a_regular_series_gives_its_timeframe(step: timedelta, expected: str) -> None:
    assert infer_timeframe(_times(step, 50)) == expected


def test_gaps_duplicates_unreadable_rows_and_disorder_do_not_change_the_answer() -> None:
    times: list[datetime | str] = list(_times(timedelta(hours=1), 40))
    del times[10:13]  # a gap
    times += [times[5], times[6], "not a time"]  # duplicates and an unreadable cell
    times.reverse()
    assert infer_timeframe(times) == "1h"


def test_calendar_months_are_one_month_apart() -> None:
    months = [datetime(2023 + (m // 12), m % 12 + 1, 1, tzinfo=UTC) for m in range(24)]
    assert infer_timeframe(months) == "1M"


def test_too_few_or_mixed_or_unknown_spacing_gives_none() -> None:
    assert infer_timeframe(_times(timedelta(hours=1), 3)) is None
    mixed = _times(timedelta(minutes=15), 5) + [T0 + timedelta(hours=2 + i) for i in range(5)]
    mixed += [T0 + timedelta(days=1, minutes=5 * i) for i in range(5)]
    assert infer_timeframe(mixed) is None
    assert infer_timeframe(_times(timedelta(minutes=7), 30)) is None


def _hourly_csv(path: Path, n: int) -> Path:
    rows = ["time,open,high,low,close,volume"]
    for i in range(n):
        opened = (T0 + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{opened},100,101,99,100.5,3")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_file_without_a_timeframe_is_read_at_its_own(tmp_path: Path) -> None:
    result = load_and_clean(_hourly_csv(tmp_path / "h.csv", 60), exchange="binance", symbol="BTC/USDT", timeframe=None)
    assert result.report.timeframe == "1h" and len(result.candles) == 60
    assert {c.timeframe for c in result.candles} == {"1h"} and not result.report.gaps


def test_a_timeframe_the_spacing_contradicts_is_refused_with_the_one_seen(tmp_path: Path) -> None:
    path = _hourly_csv(tmp_path / "h.csv", 60)
    with pytest.raises(ReplayDataError, match="its candles are 1h apart, not 15m; use timeframe 1h"):
        load_and_clean(path, exchange="binance", symbol="BTC/USDT", timeframe="15m", check_spacing=True)
    # Without the check (the replay agent's path) the given timeframe is used as before.
    kept = load_and_clean(path, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    assert kept.report.timeframe == "15m"


def test_too_short_a_file_uses_the_fallback_or_asks_for_the_timeframe(tmp_path: Path) -> None:
    path = _hourly_csv(tmp_path / "short.csv", 2)
    with pytest.raises(ReplayDataError, match="cannot tell the timeframe"):
        load_and_clean(path, exchange="binance", symbol="BTC/USDT", timeframe=None)
    used = load_and_clean(path, exchange="binance", symbol="BTC/USDT", timeframe=None, fallback_timeframe="1h")
    assert used.report.timeframe == "1h" and len(used.candles) == 2
