"""Turning InfluxQL result rows back into protocol messages (pure functions).

Values come back as floats and become Decimals via ``read_decimal``; ids are re-derived the
way their producers derive them, so a message read back equals the one that was published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from infra.influx.errors import PriceStoreError
from infra.influx.lineprotocol import CANDLE_FIELDS, SERIES_TAGS, from_epoch_ms, read_decimal
from protocol import Candle, IndicatorSnapshot, Indicators, candle_id, derive_message_id

__all__ = ["candle_from_row", "moment_from_row", "normalise_series", "snapshot_from_row"]

# Columns of an indicator row that are no indicator: the time, the series tags and the close.
_NOT_EXTRA = frozenset({"time", "close", *SERIES_TAGS})


def normalise_series(exchange: str, symbol: str) -> tuple[str, str]:
    """The case folding the Candle validators apply, so a query for "BTC/usdt" finds "BTC/USDT"."""
    return exchange.lower(), symbol.upper()


def moment_from_row(value: Any) -> datetime:
    """The time column: epoch ms (we ask for epoch=ms), or RFC3339 from a server that ignores it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return from_epoch_ms(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    raise PriceStoreError(f"InfluxDB returned an unreadable time {value!r}")


def candle_from_row(row: dict[str, Any], exchange: str, symbol: str, timeframe: str) -> Candle:
    """A Candle from a row with time and the OHLCV columns; ids equal the published candle's
    because Candle.closed derives them from series and open time only."""
    exchange, symbol = normalise_series(exchange, symbol)
    try:
        prices = {name: read_decimal(row[name]) for name in CANDLE_FIELDS}
    except (KeyError, ValueError) as exc:
        raise PriceStoreError(f"incomplete candle point in InfluxDB: {row!r}") from exc
    return Candle.closed(
        source="influxdb",
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_time=moment_from_row(row["time"]),
        **prices,
    )


def snapshot_from_row(row: dict[str, Any], exchange: str, symbol: str, timeframe: str) -> IndicatorSnapshot:
    """An IndicatorSnapshot from a ``SELECT *`` row; indicators absent from the point are None.
    Every other non-null field is a declared parametrised indicator (``extra``, decision 0022):
    ``SELECT *`` returns the union of the measurement's fields, null where a point has none.

    Its ids are those ``IndicatorSnapshot.caused_by(candle)`` (no id_parts) gives: the candle id
    is deterministic, so the snapshot read back carries the ids it was published with.
    """
    exchange, symbol = normalise_series(exchange, symbol)
    if row.get("close") is None:
        raise PriceStoreError(f"indicator point without close in InfluxDB: {row!r}")
    try:
        values = {
            name: read_decimal(row[name]) if row.get(name) is not None else None for name in Indicators.model_fields
        }
        extra = {
            name: read_decimal(value) for name, value in row.items()
            if value is not None and name not in _NOT_EXTRA and name not in Indicators.model_fields
        }
    except ValueError as exc:
        raise PriceStoreError(f"unreadable indicator point in InfluxDB: {row!r}") from exc
    candle_time = moment_from_row(row["time"])
    parent = candle_id(exchange, symbol, timeframe, candle_time)
    return IndicatorSnapshot(
        message_id=derive_message_id(parent, IndicatorSnapshot.schema_id()),
        correlation_id=parent,
        causation_id=parent,
        source="influxdb",
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        candle_time=candle_time,
        close=read_decimal(row["close"]),
        indicators=Indicators(**values),
        extra=extra,
    )
