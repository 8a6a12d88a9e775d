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


def parse_replay_files(value: str | None, symbols: Sequence[str]) -> dict[str, Path | None]:
    """REPLAY_FILE → file per symbol. A plain path serves the first symbol; 'SYM=path;SYM=path'
    names each; None means the package's real BTC-USD data for the first symbol."""
    if not symbols:
        raise ValueError("SYMBOLS is empty: nothing to replay")
    if not value:
        return {symbols[0]: None}
    if "=" not in value:
        return {symbols[0]: Path(value)}
    mapping: dict[str, Path | None] = {}
    for part in filter(None, (p.strip() for p in value.split(";"))):
        symbol, _, path = part.partition("=")
        mapping[symbol.strip().upper()] = Path(path.strip())
    unknown = set(mapping) - set(symbols)
    if unknown:
        raise ValueError(f"REPLAY_FILE names symbols not in SYMBOLS: {', '.join(sorted(unknown))}")
    return mapping
