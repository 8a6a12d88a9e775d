"""The timeframe grid: which open times a candle series may have, and how many are missing.

Candles of a timeframe open on a fixed grid, the way exchanges cut them (Binance, ccxt):

- minutes, hours, days and 3 days: whole multiples of the timeframe since the Unix epoch;
- ``1w``: Mondays 00:00 UTC (the epoch fell on a Thursday, so epoch multiples would be wrong);
- ``1M``: the first day of a calendar month, 00:00 UTC.

The protocol counts a month as 30 days for durations (``timeframe_seconds``); only the grid
itself follows the calendar, because that is where exchanges open monthly candles.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from protocol import timeframe_seconds

__all__ = ["is_aligned", "next_slot", "slots_between"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1970-01-05 was the first Monday after the epoch.
_FIRST_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)


@lru_cache(maxsize=64)
def _step(timeframe: str) -> timedelta:
    """One candle's length; asked for once per row of a file, so worked out once."""
    return timedelta(seconds=timeframe_seconds(timeframe))


def _anchor(timeframe: str) -> datetime:
    return _FIRST_MONDAY if timeframe == "1w" else _EPOCH


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + (moment.month - 1)


def is_aligned(open_time: datetime, timeframe: str) -> bool:
    """True when ``open_time`` (aware) is a slot of the ``timeframe`` grid."""
    moment = open_time.astimezone(UTC)
    if timeframe == "1M":
        return moment == datetime(moment.year, moment.month, 1, tzinfo=UTC)
    return (moment - _anchor(timeframe)) % _step(timeframe) == timedelta(0)


def next_slot(open_time: datetime, timeframe: str) -> datetime:
    """The grid slot after the aligned ``open_time``."""
    moment = open_time.astimezone(UTC)
    if timeframe == "1M":
        index = _month_index(moment) + 1
        return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
    return moment + _step(timeframe)


def slots_between(earlier: datetime, later: datetime, timeframe: str) -> int:
    """Number of grid slots strictly between two aligned open times (0 when adjacent)."""
    if timeframe == "1M":
        return _month_index(later.astimezone(UTC)) - _month_index(earlier.astimezone(UTC)) - 1
    return (later - earlier) // _step(timeframe) - 1
