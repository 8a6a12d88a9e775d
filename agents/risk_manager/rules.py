"""The risk checks a signal passes before an order is sized and approved. Pure (no I/O).

``evaluate`` runs, in this order (issue #5), stopping at the first refusal:

1. trading state: emergency stop → EMERGENCY_STOP; HALTED → TRADING_HALTED; REDUCING → only
   position-reducing orders (long-only spot: a SELL), else REDUCING_ONLY; a strategy instance
   an operator paused → STRATEGY_PAUSED for its BUYs (its SELLs, the exits, still pass);
2. a fresh signal (wall clock): its candle closed no longer ago than ``max_signal_age``
   (default one timeframe) → STALE_SIGNAL, so a backfill after downtime never trades history;
   the ledger agrees with the exchange (sandbox/live) → LEDGER_DRIFT for BUYs until an operator
   acknowledges the drift;
3. a fresh reference price: none → NO_PRICE; older than ``max_price_age`` → STALE_PRICE.
   There is no fallback price, ever;
4. minimum confidence → LOW_CONFIDENCE;
5. a known market (UNKNOWN_MARKET), then sizing (``sizing.size_order``): NO_POSITION, INSUFFICIENT_BALANCE, BELOW_MIN_QUANTITY,
   BELOW_MIN_NOTIONAL — the checks below need the order's notional;
6. maximum open positions → MAX_OPEN_POSITIONS (only an order that opens a new position);
7. exposure per symbol and in total (portfolio heat), as fractions of equity →
   SYMBOL_EXPOSURE_LIMIT / TOTAL_EXPOSURE_LIMIT;
8. order frequency per strategy: per hour, per day, minimum interval →
   HOURLY_ORDER_LIMIT / DAILY_ORDER_LIMIT / MIN_ORDER_INTERVAL;
9. drawdown pause → DRAWDOWN_PAUSE;
10. maximum order notional → MAX_ORDER_NOTIONAL;
11. price collar: signal price vs reference price, in basis points → PRICE_COLLAR;
12. duplicate suppression: an order was already approved for the same strategy, symbol, side
    and candle → DUPLICATE_SIGNAL.

Checks 6, 7, 9 and 10 limit new risk, so they apply to BUYs only: a SELL (closing a long
position) is never blocked by them, or a breached limit would trap the position. Frequency,
collar and duplicate checks apply to both sides. A HOLD signal is IGNORED: audited, no order
and no rejection message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from agents.risk_manager.sizing import SizedOrder, SizingConfig, SizingRejected, size_order
from infra.exchanges import MarketRules
from protocol import RejectionReason, Side, Signal, SignalSide, TradingState, timeframe_seconds

__all__ = [
    "Approved",
    "Check",
    "Ignored",
    "Rejected",
    "RiskDecision",
    "RiskLimits",
    "RiskSnapshot",
    "SignalFacts",
    "check_confidence",
    "check_drawdown",
    "check_duplicate",
    "check_exposure",
    "check_frequency",
    "check_ledger_drift",
    "check_max_notional",
    "check_new_risk",
    "check_open_positions",
    "check_price",
    "check_price_collar",
    "check_signal_age",
    "check_strategy_paused",
    "check_trading_state",
    "decide",
    "evaluate",
]

_ZERO = Decimal(0)
# A BUY/SELL signal's order side (a dict read: the backtester decides every signal here).
_ORDER_SIDE = {SignalSide.BUY: Side.BUY, SignalSide.SELL: Side.SELL}
_BPS = Decimal(10_000)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)

# A check answers None (pass) or the reason code and a human-readable detail.
Check = tuple[RejectionReason, str] | None


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits the checks enforce (RISK_* settings; see README)."""

    max_price_age: timedelta = timedelta(seconds=120)
    min_confidence: float = 0.0
    max_open_positions: int = 5
    # Fractions of equity: exposure = |quantity| x reference price, plus open BUY reservations.
    max_symbol_exposure: Decimal = Decimal("0.5")
    max_total_exposure: Decimal = Decimal("0.9")
    max_orders_per_hour: int = 20
    max_orders_per_day: int = 200
    min_order_interval: timedelta = timedelta(0)
    # New BUYs pause while drawdown from peak equity is at or above this fraction.
    max_drawdown: Decimal = Decimal("0.2")
    # Hard ceiling on one order's notional in quote; None = no ceiling.
    max_order_notional: Decimal | None = None
    price_collar_bps: Decimal = Decimal("100")
    # Oldest candle close a signal may come from, against the risk clock; None = one timeframe.
    # Only the wall clock can make a signal old: under the signal clock "now" is its close.
    max_signal_age: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """Everything a decision depends on, read by the agent just before deciding.

    ``now`` is the risk clock (the signal's candle close in replay, the wall clock live): price
    age and frequency windows are measured against it. ``position`` is the strategy's sellable
    position in the signal's symbol; ``has_exposure`` is True when the strategy already holds
    it or has an open BUY for it (another BUY then opens no new position).
    """

    now: datetime
    trading_state: TradingState
    emergency_stop: bool
    reference_price: Decimal | None
    price_time: datetime | None
    available_quote: Decimal
    equity: Decimal
    position: Decimal = _ZERO
    available_base: Decimal | None = None
    has_exposure: bool = False
    open_positions: int = 0
    symbol_exposure: Decimal = _ZERO
    total_exposure: Decimal = _ZERO
    order_times: Sequence[datetime] = field(default_factory=tuple)
    drawdown: Decimal = _ZERO
    approved_same_candle: bool = False
    emergency_reason: str | None = None
    atr: Decimal | None = None
    # Set when a held asset has no price: equity and exposure are unknown, so nothing is approved.
    valuation_error: str | None = None
    # Set while the ledger disagrees with the exchange's balances beyond the tolerance and no
    # operator has acknowledged it: new BUYs would be sized on money that may not exist.
    ledger_drift: str | None = None
    # Set while an operator has paused the signal's strategy instance: "by whom: why".
    strategy_paused: str | None = None


@dataclass(frozen=True, slots=True)
class Approved:
    order: SizedOrder


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectionReason
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    detail: str


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The outcome and every input it used (stored in the audit's JSONB)."""

    outcome: Approved | Rejected | Ignored
    inputs: dict[str, Any]


# --------------------------------------------------------------------------- checks


def check_trading_state(side: Side, snap: RiskSnapshot) -> Check:
    if snap.emergency_stop:
        return RejectionReason.EMERGENCY_STOP, f"emergency stop engaged: {snap.emergency_reason or 'no reason given'}"
    if snap.trading_state is TradingState.HALTED:
        return RejectionReason.TRADING_HALTED, "trading state is HALTED"
    if snap.trading_state is TradingState.REDUCING and side is not Side.SELL:
        return RejectionReason.REDUCING_ONLY, f"trading state is REDUCING: a {side.value} would add exposure"
    return None


def check_strategy_paused(side: Side, snap: RiskSnapshot) -> Check:
    """STRATEGY_PAUSED for a BUY of a paused strategy; a SELL still passes, so a pause never
    traps a position the strategy would exit."""
    if snap.strategy_paused is not None and side is Side.BUY:
        return RejectionReason.STRATEGY_PAUSED, f"strategy paused by the operator ({snap.strategy_paused})"
    return None


@lru_cache(maxsize=64)
def _timeframe(timeframe: str) -> timedelta:
    return timedelta(seconds=timeframe_seconds(timeframe))


def check_signal_age(signal: SignalFacts, now: datetime, max_age: timedelta | None) -> Check:
    """STALE_SIGNAL when the signal's candle closed more than ``max_age`` before ``now``."""
    timeframe = _timeframe(signal.timeframe)
    limit = max_age if max_age is not None else timeframe
    age = now - (signal.candle_time + timeframe)
    if age > limit:
        return (
            RejectionReason.STALE_SIGNAL,
            f"signal's candle closed {age.total_seconds():.0f}s ago (max {limit.total_seconds():.0f}s): history is not traded",
        )
    return None


def check_ledger_drift(side: Side, snap: RiskSnapshot) -> Check:
    """LEDGER_DRIFT for a BUY while an unacknowledged balance drift is recorded."""
    if snap.ledger_drift is not None and side is Side.BUY:
        return RejectionReason.LEDGER_DRIFT, f"ledger differs from the exchange: {snap.ledger_drift}"
    return None


def check_price(snap: RiskSnapshot, max_age: timedelta) -> Check:
    if snap.reference_price is None or snap.price_time is None:
        return RejectionReason.NO_PRICE, "no reference price in the price store"
    if snap.valuation_error is not None:
        return RejectionReason.NO_PRICE, snap.valuation_error
    age = snap.now - snap.price_time
    if age > max_age:
        return (
            RejectionReason.STALE_PRICE,
            f"reference price {snap.reference_price} is {age.total_seconds():.0f}s old (max {max_age.total_seconds():.0f}s)",
        )
    return None


def check_confidence(confidence: float, minimum: float) -> Check:
    if confidence < minimum:
        return RejectionReason.LOW_CONFIDENCE, f"confidence {confidence} < minimum {minimum}"
    return None


def check_open_positions(snap: RiskSnapshot, maximum: int) -> Check:
    if not snap.has_exposure and snap.open_positions >= maximum:
        return RejectionReason.MAX_OPEN_POSITIONS, f"{snap.open_positions} positions open, max {maximum}"
    return None


def check_exposure(snap: RiskSnapshot, notional: Decimal, limits: RiskLimits) -> Check:
    if snap.equity <= _ZERO:
        return RejectionReason.TOTAL_EXPOSURE_LIMIT, f"equity is {snap.equity}: no exposure allowed"
    symbol_after = (snap.symbol_exposure + notional) / snap.equity
    if symbol_after > limits.max_symbol_exposure:
        return (
            RejectionReason.SYMBOL_EXPOSURE_LIMIT,
            f"symbol exposure would be {symbol_after:.4f} of equity (max {limits.max_symbol_exposure})",
        )
    total_after = (snap.total_exposure + notional) / snap.equity
    if total_after > limits.max_total_exposure:
        return (
            RejectionReason.TOTAL_EXPOSURE_LIMIT,
            f"portfolio heat would be {total_after:.4f} of equity (max {limits.max_total_exposure})",
        )
    return None


def check_new_risk(snap: RiskSnapshot, notional: Decimal, limits: RiskLimits) -> Check:
    """Checks 6 and 7, the limits a BUY's notional counts against the whole account: decided on
    the snapshot here, and again by the ledger's approval under the account lock on the book as
    it stands (``agents/risk_manager/account_check.py``, decision 0029)."""
    return check_open_positions(snap, limits.max_open_positions) or check_exposure(snap, notional, limits)


def check_frequency(now: datetime, order_times: Sequence[datetime], limits: RiskLimits) -> Check:
    last_hour = sum(1 for t in order_times if now - _HOUR < t <= now)
    if last_hour >= limits.max_orders_per_hour:
        return RejectionReason.HOURLY_ORDER_LIMIT, f"{last_hour} orders in the last hour (max {limits.max_orders_per_hour})"
    last_day = sum(1 for t in order_times if now - _DAY < t <= now)
    if last_day >= limits.max_orders_per_day:
        return RejectionReason.DAILY_ORDER_LIMIT, f"{last_day} orders in the last day (max {limits.max_orders_per_day})"
    if order_times and limits.min_order_interval > timedelta(0):
        since = now - max(order_times)
        if since < limits.min_order_interval:
            return (
                RejectionReason.MIN_ORDER_INTERVAL,
                f"last order {since.total_seconds():.0f}s ago (min interval {limits.min_order_interval.total_seconds():.0f}s)",
            )
    return None


def check_drawdown(drawdown: Decimal, maximum: Decimal) -> Check:
    if drawdown >= maximum:
        return RejectionReason.DRAWDOWN_PAUSE, f"drawdown {drawdown:.4f} >= pause threshold {maximum}"
    return None


def check_max_notional(notional: Decimal, maximum: Decimal | None) -> Check:
    if maximum is not None and notional > maximum:
        return RejectionReason.MAX_ORDER_NOTIONAL, f"order notional {notional} > max {maximum}"
    return None


def check_price_collar(signal_price: Decimal, reference: Decimal, collar_bps: Decimal) -> Check:
    deviation = abs(signal_price - reference) / reference * _BPS
    if deviation > collar_bps:
        return (
            RejectionReason.PRICE_COLLAR,
            f"signal price {signal_price} is {deviation:.1f} bps from reference {reference} (collar {collar_bps} bps)",
        )
    return None


def check_duplicate(snap: RiskSnapshot) -> Check:
    if snap.approved_same_candle:
        return RejectionReason.DUPLICATE_SIGNAL, "an order was already approved for this strategy, symbol, side and candle"
    return None


# --------------------------------------------------------------------------- evaluate


class SignalFacts(Protocol):
    """What the rules read of a signal: a ``protocol.Signal`` fits, and so does the
    backtester's own light record of a strategy's Decision (no envelope to build per signal)."""

    @property
    def side(self) -> SignalSide: ...
    @property
    def confidence(self) -> float: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def candle_time(self) -> datetime: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def reason(self) -> str: ...


Outcome = Approved | Rejected | Ignored


def evaluate(
    signal: Signal, snap: RiskSnapshot, limits: RiskLimits, sizing: SizingConfig, rules: MarketRules | None
) -> RiskDecision:
    """Decide on one signal: approve with a sized order, reject with a reason, or ignore a HOLD.

    ``rules`` is None when the market is unknown (no definition in the snapshot or exchange).
    The decision is ``decide``'s; this adds every input for the audit.
    """
    inputs = _inputs(signal, snap, limits, sizing, rules)
    outcome, sized = decide(signal, snap, limits, sizing, rules)
    if sized is not None:
        inputs["sized"] = sized._asdict()
    return RiskDecision(outcome, inputs)


def decide(
    signal: SignalFacts, snap: RiskSnapshot, limits: RiskLimits, sizing: SizingConfig, rules: MarketRules | None
) -> tuple[Outcome, SizedOrder | None]:
    """The checks in the module docstring's order; the one decision function of the live risk
    manager (through ``evaluate``) and of the backtester (``agents/backtest/riskpath.py``).
    Also the sized order when sizing succeeded (even if a later check refused it)."""
    if signal.side is SignalSide.HOLD:
        return Ignored(f"HOLD: {signal.reason}"), None
    side = _ORDER_SIDE[signal.side]
    buying = side is Side.BUY

    # Each check answers None or (reason, detail); ``or`` stops at the first refusal (the
    # backtester decides every signal here: no closures built per call).
    found = (
        check_trading_state(side, snap)
        or check_strategy_paused(side, snap)
        or check_signal_age(signal, snap.now, limits.max_signal_age)
        or check_ledger_drift(side, snap)
        or check_price(snap, limits.max_price_age)
        or check_confidence(signal.confidence, limits.min_confidence)
    )
    if found is not None:
        return Rejected(*found), None

    assert snap.reference_price is not None  # check_price passed
    if rules is None:
        return Rejected(RejectionReason.UNKNOWN_MARKET, f"no market rules for {signal.exchange} {signal.symbol}"), None
    sized = size_order(
        side,
        snap.reference_price,
        rules,
        sizing,
        available_quote=snap.available_quote,
        position=snap.position,
        available_base=snap.available_base,
        equity=snap.equity,
        atr=snap.atr,
    )
    if isinstance(sized, SizingRejected):
        return Rejected(sized.reason, sized.detail), None

    late: Check | bool = (
        (buying and check_new_risk(snap, sized.notional, limits))
        or check_frequency(snap.now, snap.order_times, limits)
        or (buying and check_drawdown(snap.drawdown, limits.max_drawdown))
        or (buying and check_max_notional(sized.notional, limits.max_order_notional))
        or check_price_collar(signal.price, sized.price, limits.price_collar_bps)
        or check_duplicate(snap)
    )
    if late:
        assert not isinstance(late, bool)
        return Rejected(*late), sized
    return Approved(sized), sized


def _inputs(
    signal: Signal, snap: RiskSnapshot, limits: RiskLimits, sizing: SizingConfig, rules: MarketRules | None
) -> dict[str, Any]:
    """Every input of the decision, for the audit (made JSON-safe by the ledger)."""
    price_age = None if snap.price_time is None else (snap.now - snap.price_time).total_seconds()
    return {
        "signal": {
            "message_id": signal.message_id,
            "strategy_id": signal.strategy_id,
            "exchange": signal.exchange,
            "symbol": signal.symbol,
            "timeframe": signal.timeframe,
            "side": signal.side,
            "confidence": signal.confidence,
            "price": signal.price,
            "candle_time": signal.candle_time,
            # The exits a BUY's position is watched with (decision 0023), read back from here.
            "exits": signal.exits.model_dump(mode="json", exclude_none=True) if signal.exits is not None else None,
            "exit_reason": signal.exit_reason,
            "exit_price": signal.exit_price,
        },
        "snapshot": {**asdict(snap), "price_age_seconds": price_age},
        "limits": {
            **asdict(limits),
            "max_price_age": limits.max_price_age.total_seconds(),
            "min_order_interval": limits.min_order_interval.total_seconds(),
            "max_signal_age": None if limits.max_signal_age is None else limits.max_signal_age.total_seconds(),
        },
        "sizing": asdict(sizing),
        "market": asdict(rules) if rules is not None else None,
    }
