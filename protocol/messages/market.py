"""Market data events published by data_collection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from uuid import UUID, uuid5

from pydantic import Field, ValidationInfo, field_validator, model_validator

from protocol.envelope import Message
from protocol.types import (
    ExchangeId,
    NonNegativeDecimal,
    Price,
    Symbol,
    Timeframe,
    UtcDatetime,
    timeframe_seconds,
)

__all__ = ["Candle", "DataGap", "candle_id"]

# Namespace of candle ids: a candle is identified by its series and open time, nothing else.
_CANDLE_NAMESPACE = UUID("6f1d3c3e-9c1b-4a4e-8f3e-2b7d0c5a9e11")


def candle_id(exchange: str, symbol: str, timeframe: str, open_time: datetime) -> UUID:
    """Deterministic message id of a candle, so two replays (or a re-fetch after a restart)
    publish the same candle under the same id and consumers recognise the duplicate."""
    stamp = open_time.astimezone(UTC).isoformat()
    return uuid5(_CANDLE_NAMESPACE, f"{exchange.lower()}|{symbol.upper()}|{timeframe}|{stamp}")


class Candle(Message):
    """One closed OHLCV candle (event). Written to InfluxDB before it is published."""

    SCHEMA_NAME: ClassVar[str] = "market.candle"
    SCHEMA_VERSION: ClassVar[int] = 1

    exchange: ExchangeId = Field(description="Exchange the candle comes from (lowercase id).")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    timeframe: Timeframe = Field(description="Candle length (ccxt timeframe).")
    open_time: UtcDatetime = Field(description="Start of the candle interval (UTC).")
    close_time: UtcDatetime = Field(description="End of the candle interval (UTC), > open_time.")
    open: Price = Field(description="First trade price in the interval.")
    high: Price = Field(description="Highest trade price; >= open, close and low.")
    low: Price = Field(description="Lowest trade price; <= open and close.")
    close: Price = Field(description="Last trade price in the interval.")
    volume: NonNegativeDecimal = Field(description="Traded volume in base currency.")

    @classmethod
    def closed(cls, *, source: str, exchange: str, symbol: str, timeframe: str, open_time: datetime, **prices: Any) -> Self:
        """A candle whose message and correlation ids derive from its series and open time
        (a candle starts a chain; the same candle always starts the same chain)."""
        ident = candle_id(exchange, symbol, timeframe, open_time)
        return cls(
            message_id=ident,
            correlation_id=ident,
            source=source,
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            open_time=open_time,
            close_time=open_time + timedelta(seconds=timeframe_seconds(timeframe)),
            **prices,
        )

    @field_validator("close_time")
    @classmethod
    def _close_after_open(cls, value: object, info: ValidationInfo) -> object:
        open_time = info.data.get("open_time")
        if open_time is not None and value <= open_time:  # type: ignore[operator]
            raise ValueError("close_time must be > open_time")
        return value

    @model_validator(mode="after")
    def _ohlc_consistent(self) -> Self:
        # One check over all four prices, so every violated relation is reported, starting
        # with the most telling one (high < low), instead of whichever field came first.
        problems = [
            text
            for broken, text in (
                (self.high < self.low, "high must be >= low"),
                (self.high < self.open, "high must be >= open"),
                (self.high < self.close, "high must be >= close"),
                (self.low > self.open, "low must be <= open"),
                (self.low > self.close, "low must be <= close"),
            )
            if broken
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DataGap(Message):
    """A hole in the candle history that data collection detected (event)."""

    SCHEMA_NAME: ClassVar[str] = "market.gap"
    SCHEMA_VERSION: ClassVar[int] = 1

    exchange: ExchangeId = Field(description="Exchange whose history has the gap.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    timeframe: Timeframe = Field(description="Candle length of the series with the gap.")
    gap_start: UtcDatetime = Field(description="open_time of the first missing candle.")
    gap_end: UtcDatetime = Field(description="End of the gap (UTC), > gap_start.")
    missing_candles: int = Field(gt=0, description="Number of candles missing, > 0.")
    filled: bool = Field(description="True once the gap was back-filled from the exchange.")

    @field_validator("gap_end")
    @classmethod
    def _end_after_start(cls, value: object, info: ValidationInfo) -> object:
        start = info.data.get("gap_start")
        if start is not None and value <= start:  # type: ignore[operator]
            raise ValueError("gap_end must be > gap_start")
        return value
