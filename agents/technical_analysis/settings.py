"""Settings of the technical analysis agent: the indicator periods and the window (TA_*), which
indicators to compute (TA_DEFAULT_SET, TA_INDICATORS) and the strategy config whose declared
indicators it computes (STRATEGY_CONFIG, shared with the strategy agent; decision 0022)."""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import NoDecode

from agents.strategy.config import split_names
from agents.strategy.settings import StrategySettings
from agents.technical_analysis.indicators import IndicatorNameError, IndicatorParams, check_columns

__all__ = ["TechnicalAnalysisSettings"]

_DEFAULTS: Final = IndicatorParams()


def _env(field: str) -> str:
    return f"TA_{field.upper()}"


# Field names inside IndicatorParams' messages, rewritten to the variables operators set.
_ENV_NAMES: Final = re.compile(r"\b(" + "|".join(IndicatorParams.model_fields) + r")\b")


class TechnicalAnalysisSettings(StrategySettings):
    """The shared settings plus ``TA_<PARAM>`` for every field of ``IndicatorParams``
    (``TA_RSI_PERIOD``, ``TA_MACD_FAST``, ..., ``TA_WINDOW``; defaults are IndicatorParams'),
    and what to compute: the union of the indicators the enabled strategies of
    ``STRATEGY_CONFIG`` declare, plus the whole fixed set (``TA_DEFAULT_SET``, default true:
    what the console, the MCP server and strategies without a declaration read) and the
    operator's own ``TA_INDICATORS``."""

    ta_default_set: bool = Field(
        default=True, alias="TA_DEFAULT_SET",
        description="compute and publish the whole fixed set (protocol.Indicators); false: only the fixed columns strategies declare",
    )
    ta_indicators: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), alias="TA_INDICATORS",
        description="more indicator columns to compute, comma-separated (rsi_7,ema_200,donchian_upper_20)",
    )
    ta_from_strategies: bool = Field(
        default=True, alias="TA_FROM_STRATEGIES",
        description="compute the indicators the enabled strategies of STRATEGY_CONFIG declare",
    )

    ta_rsi_period: int = Field(default=_DEFAULTS.rsi_period, alias="TA_RSI_PERIOD")
    ta_macd_fast: int = Field(default=_DEFAULTS.macd_fast, alias="TA_MACD_FAST")
    ta_macd_slow: int = Field(default=_DEFAULTS.macd_slow, alias="TA_MACD_SLOW")
    ta_macd_signal: int = Field(default=_DEFAULTS.macd_signal, alias="TA_MACD_SIGNAL")
    ta_bb_period: int = Field(default=_DEFAULTS.bb_period, alias="TA_BB_PERIOD")
    ta_bb_stddev: float = Field(default=_DEFAULTS.bb_stddev, alias="TA_BB_STDDEV")
    ta_sma_fast: int = Field(default=_DEFAULTS.sma_fast, alias="TA_SMA_FAST")
    ta_sma_slow: int = Field(default=_DEFAULTS.sma_slow, alias="TA_SMA_SLOW")
    ta_ema_fast: int = Field(default=_DEFAULTS.ema_fast, alias="TA_EMA_FAST")
    ta_ema_slow: int = Field(default=_DEFAULTS.ema_slow, alias="TA_EMA_SLOW")
    ta_atr_period: int = Field(default=_DEFAULTS.atr_period, alias="TA_ATR_PERIOD")
    ta_adx_period: int = Field(default=_DEFAULTS.adx_period, alias="TA_ADX_PERIOD")
    ta_stoch_fastk: int = Field(default=_DEFAULTS.stoch_fastk, alias="TA_STOCH_FASTK")
    ta_stoch_slowk: int = Field(default=_DEFAULTS.stoch_slowk, alias="TA_STOCH_SLOWK")
    ta_stoch_slowd: int = Field(default=_DEFAULTS.stoch_slowd, alias="TA_STOCH_SLOWD")
    ta_window: int = Field(default=_DEFAULTS.window, alias="TA_WINDOW")

    @field_validator("ta_indicators", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        return split_names(value)

    @field_validator("ta_indicators")
    @classmethod
    def _known_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            check_columns(value)
        except IndicatorNameError as exc:
            raise ValueError(f"TA_INDICATORS: {exc}") from None
        return value

    def indicator_params(self) -> IndicatorParams:
        """The validated indicator parameters these settings describe."""
        return IndicatorParams(**{name: getattr(self, f"ta_{name}") for name in IndicatorParams.model_fields})

    @model_validator(mode="after")
    def _valid_params(self) -> TechnicalAnalysisSettings:
        # Refuse bad periods at start-up with the names the operator actually set.
        try:
            self.indicator_params()
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ", ".join(_env(str(part)) for part in error["loc"])
                text = error["msg"].removeprefix("Value error, ")
                problems.append(_ENV_NAMES.sub(lambda m: _env(m.group(0)), f"{where}: {text}" if where else text))
            raise ValueError("invalid technical analysis settings: " + "; ".join(problems)) from None
        return self
