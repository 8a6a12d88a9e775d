"""Operator controls the risk manager applies: how a close becomes a SELL signal, and how its
decision is recorded. Pure (no I/O).

A close is decided like any other signal, through the same rules (``rules.evaluate``): sized to
the strategy's whole sellable position, reserved, executed, or rejected with its reason. So
under the emergency stop (the stop approves nothing, and execution places nothing) or HALTED a
close is refused (EMERGENCY_STOP / TRADING_HALTED); under REDUCING, which allows reducing orders,
it passes. An operator who must flatten during a stop releases it first (decision 0016).
"""

from __future__ import annotations

from protocol import Candle, ClosePosition, ControlOutcome, Signal, SignalSide
from infra.db.ledger import DecisionKind, DecisionView

__all__ = ["OPERATOR_CLOSE", "close_outcome", "close_signal", "close_without_price"]

# Signal.strategy of a close: the audit tells an operator's SELL from the strategy's own.
OPERATOR_CLOSE = "operator-close"


def close_signal(command: ClosePosition, candle: Candle) -> Signal:
    """The SELL signal of ``command``'s strategy at ``candle`` (the latest stored one).

    Its id derives from the command's, so a redelivered close finds its decision and never
    decides (or orders) twice; the order's client_order_id derives from it as for any signal."""
    return Signal.caused_by(
        command,
        source=command.source,
        strategy_id=command.strategy_id,
        strategy=OPERATOR_CLOSE,
        exchange=candle.exchange,
        symbol=command.symbol,
        timeframe=candle.timeframe,
        side=SignalSide.SELL,
        confidence=1.0,
        reason=f"operator close by {command.requested_by}: {command.reason}",
        indicators={},
        candle_time=candle.open_time,
        price=candle.close,
    )


def close_without_price(command: ClosePosition, exchange: str, timeframe: str) -> tuple[ControlOutcome, str]:
    """No stored candle to price the close with: refused (no price is ever made up)."""
    return ControlOutcome.REFUSED, f"NO_PRICE: no stored {timeframe} candle of {exchange} {command.symbol} to price the SELL"


def close_outcome(decision: DecisionView) -> tuple[ControlOutcome, str, str | None]:
    """(outcome, detail, client order id) of a close from its audited decision."""
    if decision.decision is DecisionKind.APPROVED:
        return ControlOutcome.APPLIED, decision.detail, decision.client_order_id
    reason = decision.reason.value if decision.reason is not None else decision.decision.value
    return ControlOutcome.REFUSED, f"{reason}: {decision.detail}", None
