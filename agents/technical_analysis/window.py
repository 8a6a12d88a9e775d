"""The rolling candle window of one series (pure, no I/O).

Definition (what makes a restart reproduce the uninterrupted values): the indicators of candle t
are ``compute_columns`` over the last ``params.window`` candles of the series with open time
<= t, last row. Live, those candles are the ones received in order; after a restart they are
read back from InfluxDB, which holds the same candles (data collection stores before it
publishes), so both give the same window and therefore bit-identical values.

The window keeps ``size + margin`` candles so that a candle redelivered shortly after newer ones
(a crash between the InfluxDB write and the ack, a bus retry) can still be recomputed over
exactly its own window, and republished with the same values and id.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from enum import StrEnum
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from agents.technical_analysis.indicators import Column
from protocol import Candle

__all__ = ["REDELIVERY_MARGIN", "AddOutcome", "CandleWindow", "WindowView"]

# Candles kept beyond the window so a recent redelivery still finds its full window.
REDELIVERY_MARGIN: Final = 64
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS


class AddOutcome(StrEnum):
    """What ``CandleWindow.add`` did with a candle."""

    APPENDED = "appended"  # strictly newer than everything held
    DUPLICATE = "duplicate"  # same open time as a held candle: the window is unchanged
    OUT_OF_ORDER = "out_of_order"  # older than the newest and not held: refused


class _Row(NamedTuple):
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class WindowView:
    """The candles one computation uses, oldest first, as float64 columns."""

    open_time: NDArray[np.int64]
    open: Column
    high: Column
    low: Column
    close: Column
    volume: Column

    def __len__(self) -> int:
        return len(self.open_time)

    def columns(self) -> tuple[NDArray[np.int64], Column, Column, Column, Column, Column]:
        """The positional arguments of ``compute_columns`` (before ``params``)."""
        return self.open_time, self.open, self.high, self.low, self.close, self.volume


def _row(candle: Candle) -> _Row:
    return _Row(
        _to_ms(candle.open_time),
        float(candle.open),
        float(candle.high),
        float(candle.low),
        float(candle.close),
        float(candle.volume),
    )


class CandleWindow:
    """The last candles of one (exchange, symbol, timeframe), strictly increasing open times.

    Only a strictly newer candle is appended; a duplicate leaves the window as it is (the first
    copy wins); an older candle that is not held is refused, because inserting it would change
    windows whose snapshots were already published.
    """

    def __init__(self, size: int, margin: int = REDELIVERY_MARGIN) -> None:
        if size < 1 or margin < 0:
            raise ValueError("size must be >= 1 and margin >= 0")
        self.size = size
        self._rows: deque[_Row] = deque(maxlen=size + margin)
        self._times: dict[int, int] = {}  # open time ms -> sequence number of the row
        self._first_seq = 0  # sequence number of _rows[0]
        # True while the rows reach back to the start of the series' history (the store had
        # nothing older when seeded, and nothing has been evicted since).
        self._holds_start = True

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def capacity(self) -> int:
        """Candles held at most: the window plus the redelivery margin."""
        return self._rows.maxlen or 0

    @property
    def newest(self) -> datetime | None:
        """Open time of the newest candle held."""
        return None if not self._rows else _EPOCH + self._rows[-1].open_time_ms * _ONE_MS

    def seed(self, history: Iterable[Candle], *, complete: bool) -> None:
        """Fill an empty window from stored history (oldest first). ``complete`` says the store
        holds nothing older, so short windows at the start of a series are exact too."""
        if self._rows:
            raise RuntimeError("seed an empty window only")
        for candle in history:
            self.add(candle)
        self._holds_start = complete and self._first_seq == 0

    def add(self, candle: Candle) -> AddOutcome:
        """Append a strictly newer candle; report duplicates and out-of-order candles."""
        row = _row(candle)
        if self._rows and row.open_time_ms <= self._rows[-1].open_time_ms:
            return AddOutcome.DUPLICATE if row.open_time_ms in self._times else AddOutcome.OUT_OF_ORDER
        if len(self._rows) == self._rows.maxlen:
            evicted = self._rows.popleft()
            del self._times[evicted.open_time_ms]
            self._first_seq += 1
            self._holds_start = False
        self._times[row.open_time_ms] = self._first_seq + len(self._rows)
        self._rows.append(row)
        return AddOutcome.APPENDED

    def view_ending_at(self, open_time: datetime) -> WindowView | str:
        """The last ``size`` candles ending at the held candle ``open_time``, or the reason
        that window cannot be rebuilt exactly (not held; its older candles already evicted)."""
        ms = _to_ms(open_time)
        seq = self._times.get(ms)
        if seq is None:
            return "candle not in the window"
        end = seq - self._first_seq + 1
        start = end - self.size
        if start < 0:
            if not self._holds_start:
                return "the older candles of its window were already evicted"
            start = 0
        rows = list(islice(self._rows, start, end))
        return WindowView(
            open_time=np.fromiter((r.open_time_ms for r in rows), dtype=np.int64, count=len(rows)),
            open=np.fromiter((r.open for r in rows), dtype=np.float64, count=len(rows)),
            high=np.fromiter((r.high for r in rows), dtype=np.float64, count=len(rows)),
            low=np.fromiter((r.low for r in rows), dtype=np.float64, count=len(rows)),
            close=np.fromiter((r.close for r in rows), dtype=np.float64, count=len(rows)),
            volume=np.fromiter((r.volume for r in rows), dtype=np.float64, count=len(rows)),
        )
