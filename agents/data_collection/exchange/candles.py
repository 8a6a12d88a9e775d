"""Pure helpers between ccxt OHLCV rows and protocol messages (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from infra.logging import get_logger
from protocol import Candle, DataGap, candle_id, derive_message_id

__all__ = ["SOURCE", "CandleBatch", "closed_candles", "gap_event", "ms_to_utc", "utc_to_ms"]

SOURCE = "data_collection"

_log = get_logger(component="exchange_source")


@dataclass(frozen=True, slots=True)
class CandleBatch:
    """Consecutive closed candles of one symbol, oldest first.

    ``backfill`` is True for history fetched to catch up (start-up backfill, filled gaps) and
    False for candles that just closed while polling."""

    symbol: str
    candles: list[Candle]
    backfill: bool


def utc_to_ms(moment: datetime) -> int:
    # A naive datetime from a store is taken as UTC, the only zone the system writes.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def ms_to_utc(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp / 1000, tz=UTC)


def _price(value: Any) -> Decimal:
    # ccxt hands out floats; str() keeps the short decimal form the exchange sent ("100.01"),
    # where Decimal(float) would carry binary noise into every price.
    return Decimal(str(value))


def closed_candles(
    rows: Sequence[Sequence[Any]],
    *,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    since_ms: int,
    now_ms: int,
    tf_ms: int,
) -> tuple[list[Candle], int | None]:
    """Closed candles from ccxt rows at or after ``since_ms``, oldest first, one per open time.

    Returns the candles and the newest closed open time seen (also counting rows that were
    dropped as invalid, so paging moves past them instead of asking for them forever). A row
    whose interval ends after ``now_ms`` is still forming and is dropped: only closed candles
    leave the source."""
    by_open: dict[int, Sequence[Any]] = {}
    for row in rows:
        stamp = int(row[0])
        if stamp >= since_ms and stamp + tf_ms <= now_ms:
            by_open.setdefault(stamp, row)
    candles: list[Candle] = []
    for stamp in sorted(by_open):
        row = by_open[stamp]
        try:
            candles.append(
                Candle.closed(
                    source=SOURCE,
                    exchange=exchange_id,
                    symbol=symbol,
                    timeframe=timeframe,
                    open_time=ms_to_utc(stamp),
                    open=_price(row[1]),
                    high=_price(row[2]),
                    low=_price(row[3]),
                    close=_price(row[4]),
                    volume=_price(row[5]),
                )
            )
        except (ValidationError, ArithmeticError, TypeError, IndexError) as error:
            # Never invent or repair prices: the candle counts as missing (a gap is reported).
            _log.warning("invalid_candle_dropped", symbol=symbol, open_ms=stamp, error=str(error)[:300])
    newest = max(by_open) if by_open else None
    return candles, newest


def gap_event(
    *,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    tf_ms: int,
    filled: bool,
) -> DataGap:
    """A DataGap for the open times [start_ms, end_ms). Its id derives from the series and the
    range, so a restart that detects the same gap again publishes a recognisable duplicate."""
    gap_start = ms_to_utc(start_ms)
    gap_end = ms_to_utc(end_ms)
    parent = candle_id(exchange_id, symbol, timeframe, gap_start)
    ident = derive_message_id(parent, "data_gap", gap_end.isoformat(), "filled" if filled else "detected")
    return DataGap(
        message_id=ident,
        correlation_id=ident,
        source=SOURCE,
        exchange=exchange_id,
        symbol=symbol,
        timeframe=timeframe,
        gap_start=gap_start,
        gap_end=gap_end,
        missing_candles=(end_ms - start_ms) // tf_ms,
        filled=filled,
    )
