"""Progress while a replay file is loaded, and the loader's lazy row source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.data_collection.replay import RawBar, clean, cleaning, load_and_clean, load_file
from agents.data_collection.replay.cleaning import PROGRESS_EVERY, clean_rows
from agents.data_collection.replay.loading import file_source

SERIES = {"exchange": "binance", "symbol": "BTC/USD", "timeframe": "15m"}
HEADER = "time,open,high,low,close,volume"


def write_rows(tmp_path: Path, count: int) -> Path:
    lines = [HEADER] + [
        f"2024-01-01T{i // 4:02d}:{i % 4 * 15:02d}:00Z,100,110,90,105,5" for i in range(count)
    ]
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_package_progress_is_monotonic_and_ends_at_the_total() -> None:
    calls: list[tuple[int, int]] = []
    result = load_and_clean(None, **SERIES, progress=lambda *call: calls.append(call))
    total = result.report.rows_read
    assert total > PROGRESS_EVERY  # so there is a call between the first and the last
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(set(done))  # strictly increasing: no call repeated
    assert all(0 < b - a <= PROGRESS_EVERY for a, b in zip(done, done[1:]))
    assert len(calls) == 2 + (total - 1) // PROGRESS_EVERY


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (5, [(0, 5), (2, 5), (4, 5), (5, 5)]),
        (4, [(0, 4), (2, 4), (4, 4)]),  # the last step is the end call, not twice
        (1, [(0, 1), (1, 1)]),
    ],
)
def test_progress_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int, expected: list[tuple[int, int]]
) -> None:
    monkeypatch.setattr(cleaning, "PROGRESS_EVERY", 2)
    calls: list[tuple[int, int]] = []
    path = write_rows(tmp_path, rows)
    load_and_clean(path, **SERIES, progress=lambda done, total: calls.append((done, total)))
    assert calls == expected
    calls.clear()
    clean(load_file(path), **SERIES, progress=lambda done, total: calls.append((done, total)))
    assert calls == expected


def test_progress_of_nothing_is_one_call() -> None:
    calls: list[tuple[int, int]] = []
    clean([], **SERIES, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 0)]


def test_progress_counts_rows_parsed_and_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's rows are parsed while the cleaner works through them, so the progress
    covers parsing too: when the callback runs, the rows after it are not parsed yet."""
    monkeypatch.setattr(cleaning, "PROGRESS_EVERY", 3)
    source = file_source(write_rows(tmp_path, 7))
    parsed: list[int] = []

    def counted() -> Iterator[RawBar]:
        for bar in source.bars:
            parsed.append(bar.row)
            yield bar

    seen: list[tuple[int, int]] = []
    clean_rows(
        counted(), source.total, **SERIES, progress=lambda done, _: seen.append((done, len(parsed)))
    )
    assert seen == [(0, 0), (3, 3), (6, 6), (7, 7)]


def test_a_wrong_total_is_refused(tmp_path: Path) -> None:
    source = file_source(write_rows(tmp_path, 3))
    with pytest.raises(ValueError, match="told 4 rows and got 3"):
        clean_rows(source.bars, 4, **SERIES)


def test_source_total_matches_its_rows(tmp_path: Path) -> None:
    source = file_source(write_rows(tmp_path, 6))
    assert source.total == 6 and [bar.row for bar in source.bars] == [1, 2, 3, 4, 5, 6]
