"""The messages and audit records a decision produces. Pure: same inputs, same messages.

Every outgoing message is ``caused_by`` the signal, so its id is derived from the signal's id:
a signal handled twice (redelivery after a crash between commit and publish) re-publishes the
identical message, which every consumer recognises as a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents.risk_manager.sizing import SizedOrder
from infra.db.ledger import DecisionKind, DecisionRecord, DecisionView, NewReservation
from protocol import OrderRequest, OrderType, RejectionReason, RiskRejection, Signal, client_order_id_for

__all__ = ["audit_record", "order_request", "rejection", "replay", "reservation"]


def order_request(
    signal: Signal, sized: SizedOrder, *, source: str, reference_time: datetime, expires_at: datetime,
    deployment: str | None = None,
) -> OrderRequest:
    """The market order for an approved signal; its client_order_id derives from the signal id.

    ``deployment``: the database's salt in sandbox/live (see ``client_order_id_for``).
    ``reference_time`` is the open time of the stored candle whose close is the reference price.
    """
    return OrderRequest.caused_by(
        signal,
        source=source,
        signal_id=signal.message_id,
        client_order_id=client_order_id_for(signal.message_id, deployment),
        strategy_id=signal.strategy_id,
        exchange=signal.exchange,
        symbol=signal.symbol,
        side=sized.side,
        order_type=OrderType.MARKET,
        quantity=sized.quantity,
        reference_price=sized.price,
        reference_time=reference_time,
        reserved_asset=sized.reserved_asset,
        reserved_amount=sized.reserved_amount,
        expires_at=expires_at,
        exit_reason=signal.exit_reason,
        exit_price=signal.exit_price,
    )


def reservation(order: OrderRequest) -> NewReservation:
    """What the ledger must hold for ``order``."""
    return NewReservation(
        client_order_id=order.client_order_id,
        signal_id=order.signal_id,
        strategy_id=order.strategy_id,
        exchange=order.exchange,
        symbol=order.symbol,
        side=order.side,
        asset=order.reserved_asset,
        amount=order.reserved_amount,
        quantity=order.quantity,
        expires_at=order.expires_at,
    )


def rejection(signal: Signal, reason: RejectionReason, detail: str, *, source: str) -> RiskRejection:
    return RiskRejection.caused_by(
        signal,
        source=source,
        signal_id=signal.message_id,
        strategy_id=signal.strategy_id,
        symbol=signal.symbol,
        side=signal.side,
        reason=reason,
        detail=detail,
        exit_reason=signal.exit_reason,
    )


def audit_record(
    signal: Signal,
    kind: DecisionKind,
    detail: str,
    inputs: dict[str, Any],
    *,
    decided_at: datetime,
    reason: RejectionReason | None = None,
    output: OrderRequest | RiskRejection | None = None,
) -> DecisionRecord:
    """The audit row: ``decided_at`` is the risk clock (candle time in replay, wall clock live)."""
    return DecisionRecord(
        signal_id=signal.message_id,
        strategy_id=signal.strategy_id,
        symbol=signal.symbol,
        side=signal.side.value,
        detail=detail,
        inputs=inputs,
        decision=kind,
        reason=reason,
        output=output.model_dump(mode="json", by_alias=True) if output is not None else None,
        decided_at=decided_at,
        exit_reason=signal.exit_reason.value if signal.exit_reason is not None else None,
    )


def replay(signal: Signal, prior: DecisionView, *, source: str) -> OrderRequest | RiskRejection | None:
    """The message the audited decision produced, rebuilt identically (None for IGNORED)."""
    if prior.decision is DecisionKind.APPROVED:
        if prior.output is None:
            raise ValueError(f"approved decision {prior.id} has no recorded order")
        return OrderRequest.model_validate(prior.output)
    if prior.decision is DecisionKind.REJECTED:
        assert prior.reason is not None, "a rejection always has a reason"
        return rejection(signal, prior.reason, prior.detail, source=source)
    return None
