"""Columnar indicator history: what every strategy reads (pure, no I/O).

One float64 array per column — ``close``, the ``protocol.Indicators`` fields and any declared
parametrised indicator (``rsi_7``, ``ema_50``: ``protocol.indicators``, decision 0022), NaN
meaning "warming up" — and an int64 array of candle open times in epoch milliseconds. Two ways
in:

* ``IndicatorHistory.from_columns`` — the backtester hands over whole columns at once (for
  instance the output of the technical analysis agent's ``compute_columns``);
* ``append`` — the live agent adds one ``IndicatorSnapshot`` at a time (its fixed
  ``indicators`` and its ``extra`` declared ones; Decimal -> float, which
  gives back the very float the analysis computed, see decision 0005), keeping at most
  ``max_length`` rows.

Rows are only ever added at the end, strictly newer than the last one: a duplicate or older
candle can never rewrite what a strategy already decided on. ``version`` changes on every
mutation, and ``derived`` caches arrays computed from the columns (a strategy's own moving
averages) until the next mutation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike

from protocol import IndicatorSnapshot, Indicators
from protocol.indicators import IndicatorNameError, check_column

__all__ = ["COLUMNS", "INDICATOR_FIELDS", "IndicatorHistory", "epoch_ms", "from_epoch_ms", "is_column"]

INDICATOR_FIELDS: Final[tuple[str, ...]] = tuple(Indicators.model_fields)
COLUMNS: Final[tuple[str, ...]] = ("close", *INDICATOR_FIELDS)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAN: Final = float("nan")
_MIN_CAPACITY: Final = 64
_KNOWN: Final = frozenset(COLUMNS)


def is_column(name: str) -> bool:
    """True for ``close``, a fixed indicator or a valid parametrised name (``rsi_7``)."""
    return name in _KNOWN or _problem(name) is None


def _problem(name: str) -> str | None:
    try:
        check_column(name)
    except IndicatorNameError as exc:
        return str(exc)
    return None


def _unknown(names: Iterable[str]) -> list[str]:
    """The names that are no indicator column ("close" is not one: it is given apart)."""
    return sorted(name for name in names if name == "close" or not is_column(name))


def _describe_unknown(names: list[str]) -> str:
    if len(names) == 1 and names[0] != "close":
        return _problem(names[0]) or names[0]
    return ", ".join(names)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of a timezone-aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"candle time must be timezone-aware, got {moment!r}")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    """The UTC datetime of an epoch-millisecond timestamp."""
    return _EPOCH + timedelta(milliseconds=int(ms))


def _times_to_ms(times: ArrayLike | Sequence[datetime]) -> np.ndarray:
    array = np.asarray(times)
    if array.dtype.kind == "M":
        return array.astype("datetime64[ms]").astype(np.int64)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "O" or array.size == 0:
        return np.fromiter((epoch_ms(t) for t in array.tolist()), dtype=np.int64, count=array.size)
    raise ValueError(f"candle times must be epoch ms integers, datetime64 or datetimes, got dtype {array.dtype}")


class IndicatorHistory:
    """Float64 columns of close and indicators per candle, oldest row first.

    ``max_length`` bounds the live agent's memory: appending to a full history drops the
    oldest row, after which ``complete`` is False (row 0 is no longer the series' first
    candle). Storage is a buffer of twice the bound, compacted when its end is reached, so an
    append costs O(1) amortised and a column is always one contiguous view (what TA-Lib needs).
    A column that was never given a value has no buffer until it is read (all NaN): a backtest
    of a strategy reading only the close does not fill 19 columns of NaN.
    """

    def __init__(self, max_length: int | None = None, *, complete: bool = True) -> None:
        if max_length is not None and max_length < 2:
            raise ValueError("max_length must be at least 2")
        self.max_length = max_length
        self.complete = complete
        capacity = 2 * max_length if max_length is not None else _MIN_CAPACITY
        self._buffers: dict[str, np.ndarray] = {}
        self._time_buffer = np.zeros(capacity, dtype=np.int64)
        self._start = 0
        self._n = 0
        self.version = 0
        self._views: dict[str, np.ndarray] = {}
        self._times_view: np.ndarray | None = None
        self._derived: dict[Hashable, np.ndarray] = {}
        # None: every column may be read. Else the only ones that hold values (a backtest
        # computes what the strategy declares); reading another is refused, not NaN.
        self.readable: frozenset[str] | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_columns(
        cls,
        times: ArrayLike | Sequence[datetime],
        close: ArrayLike,
        indicators: Mapping[str, ArrayLike] | None = None,
        *,
        max_length: int | None = None,
        complete: bool = True,
        readable: Iterable[str] | None = None,
    ) -> IndicatorHistory:
        """A history from whole columns (the backtester's way in).

        ``times`` are candle open times (epoch ms, datetime64 or aware datetimes), strictly
        increasing; ``indicators`` is keyed by ``Indicators`` field names or parametrised names
        (``rsi_7``); missing ones are all NaN, unknown names are refused, so a renamed indicator
        cannot silently vanish.
        ``readable``: the only indicator columns ``col`` may return (``close`` always), when
        the others were deliberately not computed.
        """
        time_ms = _times_to_ms(times)
        n = time_ms.size
        if n > 1 and not bool(np.all(np.diff(time_ms) > 0)):
            raise ValueError("candle times must be strictly increasing")
        given = dict(indicators or {})
        unknown = _unknown(given)
        if unknown:
            raise ValueError(f"unknown indicator columns {unknown}: {_describe_unknown(unknown)}")
        columns = {"close": close, **given}
        history = cls(max_length, complete=complete)
        if readable is not None:
            history.readable = frozenset(readable) | {"close"}
        keep = n if max_length is None else min(n, max_length)
        if keep < n:
            history.complete = False
        capacity = max(_MIN_CAPACITY, keep) if max_length is None else 2 * max_length
        history._time_buffer = np.zeros(capacity, dtype=np.int64)
        history._time_buffer[:keep] = time_ms[n - keep :]
        for name, column in columns.items():
            values = np.asarray(column, dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(f"column {name!r} has shape {values.shape}, expected ({n},)")
            buffer = np.full(capacity, np.nan)
            buffer[:keep] = values[n - keep :]
            history._buffers[name] = buffer
        history._n = keep
        history._changed()
        return history

    @classmethod
    def from_snapshots(
        cls, snapshots: Iterable[IndicatorSnapshot], *, max_length: int | None = None, complete: bool = True
    ) -> IndicatorHistory:
        """A history from snapshots in candle order (duplicates and older ones are skipped)."""
        history = cls(max_length, complete=complete)
        for snapshot in snapshots:
            if history.accepts(snapshot.candle_time):
                history.append(snapshot)
        return history

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self._n

    def col(self, name: str) -> np.ndarray:
        """The read-only column ``name`` (``close``, an Indicators field or a parametrised
        indicator such as ``rsi_7``), one value per row."""
        view = self._views.get(name)
        if view is None:
            if not is_column(name):
                raise KeyError(f"unknown history column {name!r}: {_describe_unknown([name])}")
            if self.readable is not None and name not in self.readable:
                raise KeyError(
                    f"column {name!r} was not computed: the strategy declares it reads only "
                    f"{', '.join(sorted(self.readable))} (add it to its COLUMNS / indicator_columns)"
                )
            view = self._buffer(name)[self._start : self._start + self._n]
            view.flags.writeable = False
            self._views[name] = view
        return view

    @property
    def times(self) -> np.ndarray:
        """Candle open times, epoch ms, one per row (read-only)."""
        if self._times_view is None:
            view = self._time_buffer[self._start : self._start + self._n]
            view.flags.writeable = False
            self._times_view = view
        return self._times_view

    def time_ms(self, i: int) -> int:
        return int(self.times[i])

    def candle_time(self, i: int) -> datetime:
        return from_epoch_ms(self.time_ms(i))

    @property
    def last_time_ms(self) -> int | None:
        return int(self._time_buffer[self._start + self._n - 1]) if self._n else None

    def index_of(self, time_ms: int) -> int | None:
        """The row of the candle opened at ``time_ms``, or None."""
        times = self.times
        i = int(np.searchsorted(times, time_ms))
        return i if i < self._n and int(times[i]) == time_ms else None

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """The parametrised indicator columns holding values (``rsi_7``), sorted."""
        return tuple(sorted(name for name in self._buffers if name not in _KNOWN))

    def row(self, i: int) -> dict[str, float | None]:
        """All values of row ``i`` (None for NaN): for logs and tests, not the hot path."""
        values: dict[str, float | None] = {}
        for name in (*COLUMNS, *self.extra_columns):
            value = self.col(name).item(i)
            values[name] = None if value != value else value
        return values

    def derived(self, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()`` cached until the history next changes (e.g. a strategy's own SMA)."""
        value = self._derived.get(key)
        if value is None:
            value = compute()
            value.flags.writeable = False
            self._derived[key] = value
        return value

    # ------------------------------------------------------------------ appending

    def accepts(self, candle_time: datetime) -> bool:
        """True when a candle at ``candle_time`` would be a new last row."""
        last = self.last_time_ms
        return last is None or epoch_ms(candle_time) > last

    def append(self, snapshot: IndicatorSnapshot) -> int:
        """Add a snapshot as the newest row; its index. Refuses a candle that is not newer
        than the last row (check ``index_of`` first): history is never rewritten."""
        values = {name: (_NAN if value is None else float(value)) for name, value in snapshot.indicators}
        for name, value in snapshot.extra.items():
            values[name] = float(value)
        return self.append_row(epoch_ms(snapshot.candle_time), float(snapshot.close), values)

    def append_row(self, time_ms: int, close: float, values: Mapping[str, float | None]) -> int:
        """Add one row of plain floats (None or NaN = warming up); its index."""
        last = self.last_time_ms
        if last is not None and time_ms <= last:
            raise ValueError(f"row at {from_epoch_ms(time_ms).isoformat()} is not newer than the last row")
        unknown = _unknown(name for name in values if name not in _KNOWN or name == "close")
        if unknown:
            raise ValueError(f"unknown indicator names {unknown}: {_describe_unknown(unknown)}")
        if self.max_length is not None and self._n == self.max_length:
            self._start += 1
            self._n -= 1
            self.complete = False
        self._make_room()
        at = self._start + self._n
        self._time_buffer[at] = time_ms
        self._buffer("close")[at] = close
        buffers = self._buffers
        for name, value in values.items():
            if value is not None:
                self._buffer(name)[at] = value
        # A column this row does not carry is NaN here (buffers may hold an older value).
        for name, buffer in buffers.items():
            if name != "close" and values.get(name) is None:
                buffer[at] = _NAN
        self._n += 1
        self._changed()
        return self._n - 1

    def _buffer(self, name: str) -> np.ndarray:
        """The storage of column ``name``, created all NaN on first use (same capacity and
        offset as the others: rows never written are NaN in every column)."""
        buffer = self._buffers.get(name)
        if buffer is None:
            buffer = self._buffers[name] = np.full(self._time_buffer.size, np.nan)
        return buffer

    def _make_room(self) -> None:
        capacity = self._time_buffer.size
        if self._start + self._n < capacity:
            return
        if self.max_length is None and self._n >= capacity // 2:
            capacity *= 2  # unbounded: grow geometrically
        keep = slice(self._start, self._start + self._n)
        self._time_buffer = _moved(self._time_buffer[keep], capacity, 0)
        for name, buffer in self._buffers.items():
            self._buffers[name] = _moved(buffer[keep], capacity, np.nan)
        self._start = 0

    def _changed(self) -> None:
        self.version += 1
        self._views = {}
        self._times_view = None
        self._derived = {}

    def __repr__(self) -> str:
        span: Any = "empty"
        if self._n:
            span = f"{self.candle_time(0).isoformat()}..{self.candle_time(self._n - 1).isoformat()}"
        return f"IndicatorHistory(rows={self._n}, max_length={self.max_length}, {span})"


def _moved(values: np.ndarray, capacity: int, fill: float) -> np.ndarray:
    """A fresh buffer of ``capacity`` holding ``values`` at its start (the rest ``fill``)."""
    buffer = np.full(capacity, fill, dtype=values.dtype)
    buffer[: values.size] = values
    return buffer
