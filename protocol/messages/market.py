"""Market data events published by data_collection."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from protocol.envelope import Message
from protocol.types import (
    ExchangeId,
    NonNegativeDecimal,
    Price,
    Symbol,
    Timeframe,
    UtcDatetime,
)

__all__ = ["Candle", "DataGap"]


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

    # Field validators (not one model validator) so each refusal names its field.
    @field_validator("close_time")
    @classmethod
    def _close_after_open(cls, value: object, info: ValidationInfo) -> object:
        open_time = info.data.get("open_time")
        if open_time is not None and value <= open_time:  # type: ignore[operator]
            raise ValueError("close_time must be > open_time")
        return value

    @field_validator("high")
    @classmethod
    def _high_covers_open(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        open_ = info.data.get("open")
        if open_ is not None and value < open_:
            raise ValueError("high must be >= open")
        return value

    @field_validator("low")
    @classmethod
    def _low_below_high_and_open(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        high, open_ = info.data.get("high"), info.data.get("open")
        if high is not None and high < value:
            raise ValueError("high must be >= low")
        if open_ is not None and value > open_:
            raise ValueError("low must be <= open")
        return value

    @field_validator("close")
    @classmethod
    def _close_within_range(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        high, low = info.data.get("high"), info.data.get("low")
        if high is not None and value > high:
            raise ValueError("high must be >= close")
        if low is not None and value < low:
            raise ValueError("low must be <= close")
        return value


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
