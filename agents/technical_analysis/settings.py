"""Settings of the technical analysis agent: the indicator periods and the window (TA_*)."""

from __future__ import annotations

import re
from typing import Final

from pydantic import Field, ValidationError, model_validator

from agents.technical_analysis.indicators import IndicatorParams
from infra.settings import Settings

__all__ = ["TechnicalAnalysisSettings"]

_DEFAULTS: Final = IndicatorParams()


def _env(field: str) -> str:
    return f"TA_{field.upper()}"


# Field names inside IndicatorParams' messages, rewritten to the variables operators set.
_ENV_NAMES: Final = re.compile(r"\b(" + "|".join(IndicatorParams.model_fields) + r")\b")


class TechnicalAnalysisSettings(Settings):
    """The shared settings plus ``TA_<PARAM>`` for every field of ``IndicatorParams``
    (``TA_RSI_PERIOD``, ``TA_MACD_FAST``, ..., ``TA_WINDOW``); defaults are IndicatorParams'."""

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
