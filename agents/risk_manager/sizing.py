"""Order sizing: how much to buy or sell for an approved signal. Pure (no I/O), Decimal only.

Shared by the risk manager agent and the backtester (claudedocs/decisions/0005).

BUY, mode ``FRACTION``
    quantity = available_quote x fraction / (price x (1 + fee_buffer + slippage_buffer)),
    capped so that quantity x price <= max_trade_notional (when set).
BUY, mode ``ATR`` (risk per trade)
    quantity = equity x risk_fraction / (atr x stop_multiple): a stop ``stop_multiple`` ATRs
    away loses ``risk_fraction`` of equity. Capped by max_trade_notional and by what the
    available quote balance can pay for.
SELL (spot, long-only)
    the strategy's whole sellable position (never more than the available base balance).

Then the quantity is rounded DOWN to the market's lot step and checked against the market's
minimum quantity and minimum notional (``infra.exchanges.MarketRules``, from ccxt market
definitions: never hard-coded).

Reservation: a BUY reserves ``quantity x price x (1 + fee_buffer + slippage_buffer)`` of the
quote asset, so the fee and an adverse fill price are covered by what is held; a SELL reserves
``quantity`` of the base asset (its fee is taken from the quote proceeds). "All-in"
(``fraction=1``, what the backtester uses) is the largest lot-rounded quantity whose
reservation fits in the available quote balance, buffers included.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from infra.exchanges import MarketRules
from protocol import RejectionReason, Side, split_symbol

__all__ = [
    "SizedOrder",
    "SizingConfig",
    "SizingMode",
    "SizingRejected",
    "SizingResult",
    "ceil_to_step",
    "floor_to_step",
    "size_order",
]

_ZERO = Decimal(0)
_ONE = Decimal(1)
# The (base, quote) of a symbol: the same few symbols on every order (a backtest sizes hundreds).
_assets = lru_cache(maxsize=256)(split_symbol)


class SizingMode(StrEnum):
    """How a BUY is sized."""

    FRACTION = "fraction"
    ATR = "atr"


@dataclass(frozen=True, slots=True)
class SizingConfig:
    """Sizing parameters (RISK_SIZING_* settings in the agent; chosen directly by a backtest)."""

    mode: SizingMode = SizingMode.FRACTION
    # FRACTION: share of the available quote balance one BUY may use (1 = all-in).
    fraction: Decimal = Decimal("0.1")
    # Cap on one trade's notional (quantity x price) in quote; None = no cap.
    max_trade_notional: Decimal | None = None
    # ATR: share of equity lost if the stop (stop_multiple x ATR away) is hit.
    risk_fraction: Decimal = Decimal("0.01")
    stop_multiple: Decimal = Decimal("2")
    # Headroom reserved on a BUY for the fee and for a fill worse than the reference price.
    fee_buffer: Decimal = Decimal("0.001")
    slippage_buffer: Decimal = Decimal("0.0005")

    def __post_init__(self) -> None:
        if not _ZERO < self.fraction <= _ONE:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.max_trade_notional is not None and self.max_trade_notional <= _ZERO:
            raise ValueError("max_trade_notional must be > 0 (or None for no cap)")
        if not _ZERO < self.risk_fraction <= _ONE:
            raise ValueError(f"risk_fraction must be in (0, 1], got {self.risk_fraction}")
        if self.stop_multiple <= _ZERO:
            raise ValueError("stop_multiple must be > 0")
        if self.fee_buffer < _ZERO or self.slippage_buffer < _ZERO:
            raise ValueError("fee_buffer and slippage_buffer must be >= 0")

    @property
    def reserve_multiplier(self) -> Decimal:
        """What a BUY reserves per unit of notional: 1 + fee_buffer + slippage_buffer."""
        return _ONE + self.fee_buffer + self.slippage_buffer


class SizedOrder(NamedTuple):
    """A sized, lot-rounded order and the balance it must reserve.

    A NamedTuple like ``FillQuote``: immutable and cheap to build, once per order a backtest
    sizes (decision 0009)."""

    side: Side
    quantity: Decimal
    price: Decimal
    notional: Decimal
    reserved_asset: str
    reserved_amount: Decimal


@dataclass(frozen=True, slots=True)
class SizingRejected:
    """No order is possible: the reason code and a human-readable detail."""

    reason: RejectionReason
    detail: str


SizingResult = SizedOrder | SizingRejected

# Module constants for the hot path: a backtest sizes every fill (an enum member read through
# its class costs a lookup each time).
_BUY, _SELL, _ATR = Side.BUY, Side.SELL, SizingMode.ATR


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded down to a multiple of ``step`` (no rounding when step <= 0)."""
    if step <= _ZERO:
        return value
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded up to a multiple of ``step`` (no rounding when step <= 0)."""
    if step <= _ZERO:
        return value
    return (value / step).to_integral_value(ROUND_CEILING) * step


def size_order(
    side: Side,
    price: Decimal,
    rules: MarketRules,
    config: SizingConfig,
    *,
    available_quote: Decimal,
    position: Decimal = _ZERO,
    available_base: Decimal | None = None,
    equity: Decimal | None = None,
    atr: Decimal | None = None,
) -> SizingResult:
    """Size a BUY or SELL of ``rules.symbol`` at ``price`` (the reference price).

    ``available_quote``: quote balance free to reserve. ``position``: the strategy's sellable
    position in the symbol (its quantity minus what its open SELLs already reserve).
    ``available_base``: base balance free to reserve (None: not limited beyond ``position``).
    ``equity`` and ``atr`` are needed in ATR mode only.
    """
    if price <= _ZERO:
        raise ValueError(f"price must be > 0, got {price}")
    base, quote, _ = _assets(rules.symbol)
    if side is _SELL:
        return _size_sell(price, rules, base, position, available_base)
    return _size_buy(price, rules, config, quote, available_quote, equity, atr)


def _size_sell(
    price: Decimal, rules: MarketRules, base: str, position: Decimal, available_base: Decimal | None
) -> SizingResult:
    if position <= _ZERO:
        return SizingRejected(RejectionReason.NO_POSITION, f"no {base} position to sell (long-only spot)")
    sellable = position if available_base is None else min(position, available_base)
    if sellable <= _ZERO:
        return SizingRejected(
            RejectionReason.INSUFFICIENT_BALANCE,
            f"position {position} {base} but only {available_base} {base} available",
        )
    quantity = floor_to_step(sellable, rules.lot_step)
    return _checked(_SELL, quantity, price, quantity * price, rules, base, quantity)


def _size_buy(
    price: Decimal,
    rules: MarketRules,
    config: SizingConfig,
    quote: str,
    available_quote: Decimal,
    equity: Decimal | None,
    atr: Decimal | None,
) -> SizingResult:
    multiplier = config.reserve_multiplier
    lot_step = rules.lot_step
    smallest = max(rules.min_qty, ceil_to_step(rules.min_notional / price, lot_step))
    if available_quote <= _ZERO or smallest * price * multiplier > available_quote:
        return SizingRejected(
            RejectionReason.INSUFFICIENT_BALANCE,
            f"{available_quote} {quote} available; the smallest {rules.symbol} order "
            f"({smallest} at {price}) needs {smallest * price * multiplier} {quote} with buffers",
        )
    affordable = available_quote / (price * multiplier)
    if config.mode is _ATR:
        if atr is None or atr <= _ZERO or equity is None or equity <= _ZERO:
            # No volatility estimate means no risk-based size; guessing one would be a made-up number.
            return SizingRejected(
                RejectionReason.NO_PRICE, f"ATR sizing needs a positive ATR and equity (atr={atr}, equity={equity})"
            )
        wanted = min(equity * config.risk_fraction / (atr * config.stop_multiple), affordable)
    else:
        wanted = affordable * config.fraction
    if config.max_trade_notional is not None:
        wanted = min(wanted, config.max_trade_notional / price)
    quantity = floor_to_step(wanted, lot_step)
    notional = quantity * price
    reserve = notional * multiplier  # quantity x price x multiplier
    # Division rounds to 28 significant digits and may round up; step down until the
    # reservation provably fits (at most once or twice).
    while quantity > _ZERO and reserve > available_quote:
        stepped = quantity - lot_step if lot_step > _ZERO else _ZERO
        if stepped == quantity:
            # More significant digits than Decimal keeps: a step changes nothing, and the loop
            # would never end. Only an absurd balance gets here; refuse it, never guess.
            return SizingRejected(
                RejectionReason.MAX_ORDER_NOTIONAL,
                f"{quantity} {rules.symbol} at {price} is beyond Decimal precision to size to the lot step {lot_step}",
            )
        quantity = stepped
        notional = quantity * price
        reserve = notional * multiplier
    return _checked(_BUY, quantity, price, notional, rules, quote, reserve)


def _checked(
    side: Side, quantity: Decimal, price: Decimal, notional: Decimal, rules: MarketRules, asset: str, reserve: Decimal
) -> SizingResult:
    """The order (``notional`` = quantity x price, computed by the caller once), or why the
    market refuses it."""
    if quantity <= _ZERO or quantity < rules.min_qty:
        return SizingRejected(
            RejectionReason.BELOW_MIN_QUANTITY,
            f"{side.value} quantity {quantity} is below the {rules.symbol} minimum {rules.min_qty} "
            f"(lot step {rules.lot_step})",
        )
    if notional < rules.min_notional:
        return SizingRejected(
            RejectionReason.BELOW_MIN_NOTIONAL,
            f"{side.value} notional {notional} is below the {rules.symbol} minimum {rules.min_notional}",
        )
    return SizedOrder(side, quantity, price, notional, asset, reserve)
