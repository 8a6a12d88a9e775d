"""The replay loading benchmark's synthetic file has the rows and defects it claims."""

from __future__ import annotations

import csv
import importlib.util
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from agents.data_collection.replay import load_and_clean


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "scripts" / "bench_replay_load.py"
    spec = importlib.util.spec_from_file_location("bench_replay_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_package_value_rows_are_the_files_cells_on_the_grid() -> None:
    values = bench.package_value_rows(bench.package_path())
    assert len(values) == 8721 - 3  # the package's three partial bars left out
    assert values[0] == ["43443.0625", "43555.515625", "43443.0625", "43548.7734375", "50628608"]


@pytest.mark.parametrize("layout", ["header", "binance"])
def test_synthetic_file_defects_match_what_cleaning_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    # Small spacings, so a few hundred rows hold every kind of defect several times.
    monkeypatch.setattr(bench, "EXACT_DUPLICATE_EVERY", 10)
    monkeypatch.setattr(bench, "CONFLICTING_DUPLICATE_EVERY", 25)
    monkeypatch.setattr(bench, "HOLE_EVERY", 40)
    path = tmp_path / "synthetic.csv"
    bench.write_synthetic(path, 300, layout)
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    if layout == "header":
        assert lines.pop(0) == ["Datetime", "Open", "High", "Low", "Close", "Volume"]
        moments = [datetime.fromisoformat(line[0]) for line in lines]
    else:
        assert {len(line) for line in lines} == {12}
        first = int(lines[0][0])
        moments = [
            bench.SYNTHETIC_START + timedelta(milliseconds=int(line[0]) - first) for line in lines
        ]
    assert len(lines) == 300
    # Every time on the 1m grid but the last, which is the bar still forming.
    assert all(m.second == 0 for m in moments[:-1]) and moments[-1].second == 2
    exact = sum(1 for a, b in zip(lines, lines[1:]) if a == b)
    conflicting = sum(1 for a, b in zip(lines, lines[1:]) if a != b and a[0] == b[0])
    steps = [b - a for a, b in zip(moments[:-1], moments[1:-1]) if b != a]
    holes = [step for step in steps if step != timedelta(minutes=1)]
    assert exact >= 5 and conflicting >= 2 and len(holes) >= 2
    assert set(holes) == {timedelta(minutes=1 + bench.HOLE_MINUTES)}

    report = load_and_clean(path, exchange="binance", symbol="BTC/USD", timeframe="1m").report
    assert report.rows_read == 300
    assert (report.duplicates_dropped, report.conflicting_duplicates) == (exact, conflicting)
    assert report.partial_bars_refused == 1 and report.invalid_refused == 0
    assert [gap.missing for gap in report.gaps] == [bench.HOLE_MINUTES] * len(holes)
