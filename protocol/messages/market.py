"""Market data events published by data_collection."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

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
