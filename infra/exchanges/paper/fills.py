"""Paper fill rules: pure, exact Decimal arithmetic, shared by the paper exchange and the backtester.

Conventions (decision 0005; the same numbers live and in a backtest):

- A market order fills in full at the reference price (the latest candle close) moved by the
  slippage in basis points against the trader: a BUY pays ``ref * (1 + bps/10000)``, a SELL
  receives ``ref * (1 - bps/10000)``; the result is then rounded to the market's tick, again
  against the trader (BUY up, SELL down). It pays the taker fee.
- A limit order that is not marketable rests. It fills in full at its limit price with the maker
  fee when a LATER candle's range reaches it: a BUY when ``low <= limit``, a SELL when
  ``high >= limit``. A marketable limit (BUY limit >= reference, SELL limit <= reference) fills
  at once like a market order, but never beyond its limit, with the taker fee.
- Fee = notional x rate, exact (not rounded), charged in the QUOTE currency for both sides: a
  BUY spends ``notional + fee`` quote, a SELL receives ``notional - fee`` quote. (Binance charges
  a BUY's fee in the base asset; one fee currency keeps positions and PnL simple.)
- Quantity must be a multiple of the lot step, at least the minimum quantity, and
  price x quantity at least the minimum notional; otherwise the order is rejected with a
  reason text. Limit prices must be multiples of the tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from enum import StrEnum
from typing import NamedTuple

from infra.exchanges.markets import MarketRules
from protocol import Side

__all__ = [
    "BPS",
    "DEFAULT_FEES",
    "FeeRates",
    "FillQuote",
    "FillRejected",
    "Liquidity",
    "balance_changes",
    "check_limit_price",
    "check_quantity",
    "fee_for",
    "funds_needed",
    "limit_crossed",
    "limit_fill",
    "marketable_limit_fill",
    "market_fill",
    "market_fill_price",
    "round_to_tick",
]

BPS = Decimal(10000)
_ZERO = Decimal(0)
# Wide enough that no realistic price / tick division rounds: the arithmetic stays exact.
# Used through its methods (``_EXACT.multiply(a, b)``) rather than ``localcontext``: the same
# arithmetic in the same context, without copying a context per operation (a backtest fills
# hundreds of orders). Only the operation's own status decides a trap, so sharing it is safe.
_EXACT = Context(prec=60)
_multiply = _EXACT.multiply
_divide = _EXACT.divide
# Module constants: an enum member read through its class costs a lookup, on every fill.
_BUY, _SELL = Side.BUY, Side.SELL


class Liquidity(StrEnum):
    """Whether a fill took liquidity (taker fee) or rested on the book (maker fee)."""

    TAKER = "TAKER"
    MAKER = "MAKER"


@dataclass(frozen=True, slots=True)
class FeeRates:
    """Fee rates as fractions of the notional (0.001 = 0.1 %, Binance spot's base rate)."""

    taker: Decimal = Decimal("0.001")
    maker: Decimal = Decimal("0.001")

    def rate(self, liquidity: Liquidity) -> Decimal:
        return self.taker if liquidity is Liquidity.TAKER else self.maker


DEFAULT_FEES = FeeRates()
_TAKER = Liquidity.TAKER


class FillQuote(NamedTuple):
    """One simulated fill: the whole order at one price.

    A NamedTuple rather than a frozen dataclass: equally immutable, and about a third of the
    cost to build (a backtest builds one per fill; decision 0009)."""

    side: Side
    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity


class FillRejected(ValueError):
    """The order breaks a market rule (or a price rule); ``reason`` says which, with numbers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def round_to_tick(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """``price`` on the tick grid, rounded against the trader: BUY up, SELL down."""
    if tick <= _ZERO:
        raise ValueError(f"tick size must be > 0, got {tick}")
    # (rounding, context) passed positionally: keyword parsing costs as much as the division.
    steps = _divide(price, tick).to_integral_value(ROUND_CEILING if side is _BUY else ROUND_FLOOR, _EXACT)
    return _multiply(steps, tick)


def market_fill_price(side: Side, reference: Decimal, slippage_bps: Decimal, tick: Decimal) -> Decimal:
    """Reference price moved by ``slippage_bps`` against the trader, then tick-rounded against them."""
    if reference <= _ZERO:
        raise ValueError(f"reference price must be > 0, got {reference}")
    if slippage_bps < _ZERO:
        raise ValueError(f"slippage must be >= 0 bps, got {slippage_bps}")
    moved = _EXACT.add(BPS, slippage_bps) if side is _BUY else _EXACT.subtract(BPS, slippage_bps)
    return round_to_tick(_multiply(reference, _divide(moved, BPS)), tick, side)


def fee_for(notional: Decimal, rate: Decimal) -> Decimal:
    """The fee on ``notional`` at ``rate``, exact."""
    return _multiply(notional, rate)


def check_quantity(quantity: Decimal, price: Decimal, rules: MarketRules) -> str | None:
    """Why ``quantity`` at ``price`` breaks the market's lot rules, or None when it is fine."""
    problem, _ = _checked_notional(quantity, price, rules)
    return problem


def _checked_notional(quantity: Decimal, price: Decimal, rules: MarketRules) -> tuple[str | None, Decimal]:
    """``check_quantity`` and the exact notional it computed (a fill reuses it)."""
    if quantity <= _ZERO:
        return f"quantity {quantity} must be > 0", _ZERO
    if quantity % rules.lot_step != _ZERO:
        return f"quantity {quantity} is not a multiple of the lot step {rules.lot_step} of {rules.symbol}", _ZERO
    if quantity < rules.min_qty:
        return f"quantity {quantity} is below the minimum quantity {rules.min_qty} of {rules.symbol}", _ZERO
    notional = _multiply(quantity, price)
    if notional < rules.min_notional:
        return (
            f"notional {notional} ({quantity} x {price}) is below the minimum notional "
            f"{rules.min_notional} of {rules.symbol}"
        ), notional
    return None, notional


def check_limit_price(limit: Decimal, rules: MarketRules) -> str | None:
    """Why a limit price is invalid (not positive, off the tick grid), or None."""
    if limit <= _ZERO:
        return f"limit price {limit} must be > 0"
    if limit % rules.tick_size != _ZERO:
        return f"limit price {limit} is not a multiple of the tick size {rules.tick_size} of {rules.symbol}"
    return None


def _quote(side: Side, quantity: Decimal, price: Decimal, rate: Decimal, quote_asset: str, liquidity: Liquidity) -> FillQuote:
    notional = _multiply(quantity, price)
    return FillQuote(side, quantity, price, notional, _multiply(notional, rate), quote_asset, liquidity)


def market_fill(
    side: Side,
    quantity: Decimal,
    reference: Decimal,
    rules: MarketRules,
    *,
    slippage_bps: Decimal,
    fees: FeeRates = DEFAULT_FEES,
    quote_asset: str,
) -> FillQuote:
    """The fill of a market order at ``reference``; raises FillRejected when below the rules."""
    price = market_fill_price(side, reference, slippage_bps, rules.tick_size)
    problem, notional = _checked_notional(quantity, price, rules)
    if problem:
        raise FillRejected(problem)
    return FillQuote(side, quantity, price, notional, _multiply(notional, fees.taker), quote_asset, _TAKER)


def marketable_limit_fill(
    side: Side,
    quantity: Decimal,
    limit: Decimal,
    reference: Decimal,
    rules: MarketRules,
    *,
    slippage_bps: Decimal,
    fees: FeeRates = DEFAULT_FEES,
    quote_asset: str,
) -> FillQuote | None:
    """A limit order that crosses the market at placement fills at once (taker), at the market
    fill price but never beyond the limit; None when it is not marketable and should rest."""
    marketable = limit >= reference if side is Side.BUY else limit <= reference
    if not marketable:
        return None
    price = market_fill_price(side, reference, slippage_bps, rules.tick_size)
    price = min(price, limit) if side is Side.BUY else max(price, limit)
    return _quote(side, quantity, price, fees.taker, quote_asset, Liquidity.TAKER)


def limit_crossed(side: Side, limit: Decimal, low: Decimal, high: Decimal) -> bool:
    """True when a candle with this range fills a resting limit (BUY: low <= limit; SELL: high >= limit)."""
    return low <= limit if side is Side.BUY else high >= limit


def limit_fill(side: Side, quantity: Decimal, limit: Decimal, *, fees: FeeRates = DEFAULT_FEES, quote_asset: str) -> FillQuote:
    """The fill of a resting limit order when crossed: at its limit price, with the maker fee."""
    return _quote(side, quantity, limit, fees.maker, quote_asset, Liquidity.MAKER)


def funds_needed(side: Side, quantity: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
    """What the order needs free: quote ``notional + fee`` for a BUY, base ``quantity`` for a SELL."""
    if side is _SELL:
        return quantity
    notional = _multiply(quantity, price)
    return _EXACT.add(notional, _multiply(notional, fee_rate))


def balance_changes(fill: FillQuote, base_asset: str) -> dict[str, Decimal]:
    """How a fill changes the account, per asset (fees in the quote currency)."""
    quote = fill.fee_currency
    if fill.side is Side.BUY:
        return {base_asset: fill.quantity, quote: _EXACT.minus(_EXACT.add(fill.notional, fill.fee))}
    return {base_asset: _EXACT.minus(fill.quantity), quote: _EXACT.subtract(fill.notional, fill.fee)}
