"""Protective exits: the reason codes and the per-strategy-instance settings (decision 0023).

Pure data. ``ExitSettings`` is configured per strategy instance (``[strategies.exits]`` in the
strategy config, ``--exits`` of ``tradebus backtest``) and travels on every Signal of that
instance (``Signal.exits``), so the risk manager knows the exits of a position from the BUY
that opened it (stored in the decision audit) without reading the strategy's config file. The
rules that apply them are ``agents/risk_manager/exits.py``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Final, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocol.enums import CanonicalEnum

__all__ = ["EXIT_KEYS", "ExitReason", "ExitSettings", "ExitSettingsError", "exit_settings", "parse_exits"]


class ExitReason(CanonicalEnum):
    """Which protective exit closed a position (SIGNAL: the strategy's own SELL, backtest only)."""

    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    TRAILING_STOP = "TRAILING_STOP"
    TIME_STOP = "TIME_STOP"


_Fraction = Annotated[Decimal, Field(gt=0, lt=1, allow_inf_nan=False)]
_Positive = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]


class ExitSettings(BaseModel):
    """Exits of one strategy instance; every field optional (None: that exit is off).

    Fractions are of the entry price (the average fill price of the position):

    - ``stop_loss``: sell when the price falls to entry x (1 - stop_loss);
    - ``stop_loss_atr``: instead, to entry - stop_loss_atr x ATR (the ATR of the entry signal's
      candle); at most one of the two;
    - ``take_profit``: sell when the price rises to entry x (1 + take_profit);
    - ``trailing_stop``: sell when the price falls to high-water x (1 - trailing_stop), the
      high-water mark being the highest high of the candles held before the current one (or
      the entry price);
    - ``time_stop``: sell at the close of the ``time_stop``-th candle held.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stop_loss: _Fraction | None = None
    stop_loss_atr: _Positive | None = None
    take_profit: _Positive | None = None
    trailing_stop: _Fraction | None = None
    time_stop: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_stop(self) -> Self:
        if self.stop_loss is not None and self.stop_loss_atr is not None:
            raise ValueError("set stop_loss (a fraction) or stop_loss_atr (an ATR multiple), not both")
        return self

    @property
    def enabled(self) -> bool:
        """True when at least one exit is set."""
        return any(value is not None for value in self.model_dump().values())

    def describe(self) -> str:
        """``stop_loss=0.03,time_stop=48`` (the ``--exits`` spelling), or ``none``."""
        parts = [f"{key}={value}" for key, value in self.model_dump().items() if value is not None]
        return ",".join(parts) or "none"


EXIT_KEYS: Final = tuple(ExitSettings.model_fields)


class ExitSettingsError(ValueError):
    """A ``--exits`` value or an ``exits`` table that is not valid; the message says which part."""


def parse_exits(text: str) -> ExitSettings:
    """``stop_loss=0.03,take_profit=0.06,trailing_stop=0.02,time_stop=48`` -> ExitSettings.

    Raises ExitSettingsError naming the offending item and the accepted keys."""
    values: dict[str, object] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if not sep or not raw:
            raise ExitSettingsError(f"--exits item {item!r}: expected KEY=VALUE (keys: {', '.join(EXIT_KEYS)})")
        if key not in EXIT_KEYS:
            raise ExitSettingsError(f"--exits: unknown exit {key!r} (keys: {', '.join(EXIT_KEYS)})")
        if key in values:
            raise ExitSettingsError(f"--exits: {key} given twice")
        if key == "time_stop":
            if not raw.isdigit():
                raise ExitSettingsError(f"--exits: time_stop={raw!r} is not a whole number of candles")
            values[key] = int(raw)
        else:
            try:
                values[key] = Decimal(raw)
            except InvalidOperation:
                raise ExitSettingsError(f"--exits: {key}={raw!r} is not a number") from None
    return exit_settings(values, where="--exits")


def exit_settings(values: object, *, where: str) -> ExitSettings:
    """Validate a mapping into ExitSettings; errors name ``where`` and the field."""
    try:
        return ExitSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'exits'}: {error['msg']}" for error in exc.errors()
        )
        raise ExitSettingsError(f"{where}: {problems}") from None
