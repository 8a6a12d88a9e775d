"""The timeframe a series of candles is written at, read from the spacing of its open times.

A file of 1-hour candles replayed as 15-minute candles is not an error the cleaner can see row
by row: every row is valid, and the result is thousands of "gaps" and metrics annualised with
the wrong number of periods. So the loader can read the spacing of the first rows and either
use it (no timeframe given) or refuse a timeframe the data contradicts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from protocol import TIMEFRAMES, timeframe_seconds

__all__ = ["SAMPLE_ROWS", "infer_timeframe"]

# Enough rows to see past a few gaps and duplicates; few enough to cost nothing before a load.
SAMPLE_ROWS = 2000
# The most common spacing must be at least this share of all steps to count as the timeframe.
_MIN_SHARE = 0.5
_MIN_STEPS = 3
_DAY = 86_400


def _timeframe_of(seconds: int) -> str | None:
    for timeframe in TIMEFRAMES:
        if timeframe.endswith("M"):
            # Calendar months are 28 to 31 days long; ccxt's "1M" counts 30.
            if 28 * _DAY <= seconds <= 31 * _DAY and timeframe == "1M":
                return timeframe
        elif timeframe_seconds(timeframe) == seconds:
            return timeframe
    return None


def infer_timeframe(open_times: Iterable[datetime | str]) -> str | None:
    """The timeframe most steps between consecutive readable open times have, or None when the
    rows are too few, the spacing is mixed, or it is no known timeframe. Unreadable times
    (left as text by the parser) are skipped: the cleaner reports them."""
    times = sorted({t for t in open_times if isinstance(t, datetime)})
    steps = Counter(int((later - earlier).total_seconds()) for earlier, later in zip(times, times[1:]))
    total = sum(steps.values())
    if total < _MIN_STEPS:
        return None
    seconds, count = steps.most_common(1)[0]
    if count < _MIN_SHARE * total:
        # Months vary in length: group them before giving up.
        monthly = sum(n for s, n in steps.items() if 28 * _DAY <= s <= 31 * _DAY)
        return "1M" if monthly >= _MIN_SHARE * total and "1M" in TIMEFRAMES else None
    return _timeframe_of(seconds)
