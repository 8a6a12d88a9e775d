"""A two-symbol replay slice (REPLAY_FILE): the bundled BTC series and a second series.

The second symbol is a stand-in until a second real series ships (helper `multisym`): real BTC
candles from elsewhere in the package's data, scaled to ETH prices and re-timed onto the BTC
slice's times, so the two series differ and trade at different moments, both at 15 minutes like
the one-symbol benchmark. Used by scripts/bench_instances.py.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from agents.data_collection.replay import load_and_clean
from protocol import Candle

SYMBOLS = ("BTC/USDT", "ETH/USDT")
SECOND_OFFSET = 6000  # where the second series' candles come from in the bundled data
SECOND_SCALE = Decimal("0.07")


def write_slices(folder: Path, offset: int, count: int) -> dict[str, Path]:
    """One CSV (timestamp, open, high, low, close, volume) per symbol of ``count`` candles from
    ``offset``; the mapping symbol -> file."""
    candles = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m").candles
    first = candles[offset : offset + count]
    second = [_scaled(c, SECOND_SCALE, at=b)
              for c, b in zip(candles[SECOND_OFFSET : SECOND_OFFSET + count], first, strict=True)]
    files = {}
    for symbol, series in zip(SYMBOLS, (first, second), strict=True):
        path = folder / f"{symbol.replace('/', '_')}.csv"
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
            for c in series:
                writer.writerow([c.open_time.isoformat(), c.open, c.high, c.low, c.close, c.volume])
        files[symbol] = path
    return files


def _scaled(candle: Candle, factor: Decimal, *, at: Candle) -> Candle:
    cent = Decimal("0.01")
    prices = {f: (getattr(candle, f) * factor).quantize(cent) for f in ("open", "high", "low", "close")}
    return candle.model_copy(update={**prices, "open_time": at.open_time})
