"""Analysis events: indicator snapshots (technical_analysis) and signals (strategy)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from protocol.enums import SignalSide
from protocol.exits import ExitReason, ExitSettings
from protocol.envelope import Message
from protocol.indicators import IndicatorNameError, parse_column
from protocol.types import (
    Confidence,
    ExchangeId,
    FiniteDecimal,
    NonEmptyStr,
    Price,
    StrategyId,
    Symbol,
    Timeframe,
    UtcDatetime,
)

__all__ = ["IndicatorSnapshot", "Indicators", "Signal", "SignalsDone"]

_WARMUP = "; null until enough candles have been seen."

IndicatorName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _indicator(description: str) -> FiniteDecimal | None:
    # Every indicator may be absent during warm-up; one helper keeps that rule uniform.
    return Field(default=None, description=description + _WARMUP)  # type: ignore[no-any-return]


class Indicators(BaseModel):
    """Indicator values computed on one closed candle; None while warming up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rsi: FiniteDecimal | None = _indicator("Relative Strength Index, 0-100")
    macd: FiniteDecimal | None = _indicator("MACD line (fast EMA - slow EMA)")
    macd_signal: FiniteDecimal | None = _indicator("MACD signal line")
    macd_hist: FiniteDecimal | None = _indicator("MACD histogram (macd - signal)")
    bb_upper: FiniteDecimal | None = _indicator("Upper Bollinger band")
    bb_middle: FiniteDecimal | None = _indicator("Middle Bollinger band (SMA)")
    bb_lower: FiniteDecimal | None = _indicator("Lower Bollinger band")
    bb_percent_b: FiniteDecimal | None = _indicator("Bollinger %B: position of close in the bands")
    bb_bandwidth: FiniteDecimal | None = _indicator("Bollinger bandwidth: (upper-lower)/middle")
    sma_fast: FiniteDecimal | None = _indicator("Fast simple moving average")
    sma_slow: FiniteDecimal | None = _indicator("Slow simple moving average")
    ema_fast: FiniteDecimal | None = _indicator("Fast exponential moving average")
    ema_slow: FiniteDecimal | None = _indicator("Slow exponential moving average")
    atr: FiniteDecimal | None = _indicator("Average True Range")
    adx: FiniteDecimal | None = _indicator("Average Directional Index, 0-100")
    stoch_k: FiniteDecimal | None = _indicator("Stochastic %K, 0-100")
    stoch_d: FiniteDecimal | None = _indicator("Stochastic %D, 0-100")
    obv: FiniteDecimal | None = _indicator("On-Balance Volume")
    vwap: FiniteDecimal | None = _indicator("Volume-weighted average price")


class IndicatorSnapshot(Message):
    """Indicators for one closed candle (event), caused by that Candle."""

    SCHEMA_NAME: ClassVar[str] = "analysis.indicators"
    SCHEMA_VERSION: ClassVar[int] = 1

    exchange: ExchangeId = Field(description="Exchange of the source candle.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    timeframe: Timeframe = Field(description="Candle length the indicators were computed on.")
    candle_time: UtcDatetime = Field(description="open_time of the candle these describe.")
    close: Price = Field(description="Close price of that candle.")
    indicators: Indicators = Field(description="Indicator values; null ones are warming up.")
    extra: dict[IndicatorName, FiniteDecimal] = Field(
        default_factory=dict,
        description=(
            "Indicators declared by the enabled strategies with their own parameters, by canonical "
            "column name (rsi_7, ema_50, donchian_upper_20; see protocol.indicators). Only values "
            "already computed: a declared name absent here is warming up. Absent in older messages."
        ),
    )

    @field_validator("extra")
    @classmethod
    def _canonical_names(cls, value: dict[str, object]) -> dict[str, object]:
        # One spelling per indicator on the wire and in InfluxDB; a fixed name belongs in indicators.
        for name in value:
            if name in Indicators.model_fields:
                raise ValueError(f"{name!r} is a fixed indicator: it belongs in indicators, not extra")
            try:
                parse_column(name)
            except IndicatorNameError as exc:
                raise ValueError(str(exc)) from None
        return value



class Signal(Message):
    """A strategy's recommendation for one candle (event), caused by an IndicatorSnapshot.

    Its message_id is the idempotency key of the whole trade: the order's client_order_id
    is derived from it.
    """

    SCHEMA_NAME: ClassVar[str] = "strategy.signal"
    SCHEMA_VERSION: ClassVar[int] = 1

    strategy_id: StrategyId = Field(description="Configured strategy instance, e.g. rsi-btc-1m.")
    strategy: NonEmptyStr = Field(description="Strategy kind, e.g. rsi or macd_cross.")
    exchange: ExchangeId = Field(description="Exchange the signal is for.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    timeframe: Timeframe = Field(description="Candle length the strategy runs on.")
    side: SignalSide = Field(description="BUY, SELL or HOLD.")
    confidence: Confidence = Field(description="Strategy confidence, 0 to 1.")
    reason: NonEmptyStr = Field(description="Human-readable why, e.g. 'RSI 24.3 < 30'.")
    indicators: dict[IndicatorName, FiniteDecimal | None] = Field(
        description="The indicator values the decision used, by name."
    )
    candle_time: UtcDatetime = Field(description="open_time of the candle the signal is for.")
    price: Price = Field(description="Close of that candle: the reference price of the signal.")
    exits: ExitSettings | None = Field(
        default=None,
        description=(
            "The strategy instance's protective exits (stop-loss, take-profit, trailing stop, time "
            "stop); those of the BUY that opens a position apply to it. Null: no exits."
        ),
    )
    exit_reason: ExitReason | None = Field(
        default=None,
        description=(
            "Set only on the risk manager's own SELL for a triggered protective exit (never "
            "accepted from the bus): which exit fired."
        ),
    )
    exit_price: Price | None = Field(
        default=None,
        description="With exit_reason: the price the exit fills at before slippage (within the candle's range).",
    )


class SignalsDone(Message):
    """The strategy agent has published every signal of one candle of a market (event).

    Published after those signals on the same partition, so a consumer of the signals sees it
    after all of them: the risk manager decides a candle's protective exits only once the
    signals of the candle before it are decided, as the backtester does (decision 0028).
    Strategies publish a signal only when their side changes, so without it a candle with no
    change would be indistinguishable from one whose signals are still on their way.
    """

    SCHEMA_NAME: ClassVar[str] = "strategy.signals_done"
    SCHEMA_VERSION: ClassVar[int] = 1

    exchange: ExchangeId = Field(description="Exchange of the market.")
    symbol: Symbol = Field(description="Market symbol, BASE/QUOTE.")
    timeframe: Timeframe = Field(description="Candle length.")
    candle_time: UtcDatetime = Field(description="open_time of the candle whose signals are all published.")
    signals: int = Field(ge=0, description="How many signals were published for it (changes of side only).")
