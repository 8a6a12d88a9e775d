"""Persisted risk state (one row) and the risk decisions audit."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession

from infra.db.idempotency import claim_message
from infra.db.ledger.types import DecisionKind, DecisionRecord, DecisionView, RiskStateView, jsonable
from infra.db.models import RiskDecision, RiskState, SignalProgress
from infra.logging import get_logger
from protocol.enums import RejectionReason, TradingState

__all__ = [
    "insert_decision",
    "latest_signal_candle",
    "record_signals_done",
    "read_decision",
    "read_state",
    "recent_order_times",
    "record_peak_equity",
    "set_emergency_stop",
    "set_trading_state",
]

_log = get_logger(component="ledger")
_STATE_ID = 1


def decision_view(row: RiskDecision | Row[Any]) -> DecisionView:
    """The view of an ORM row, or of a RETURNING row with the table's columns."""
    return DecisionView(
        id=row.id,
        signal_id=row.signal_id,
        strategy_id=row.strategy_id,
        symbol=row.symbol,
        side=row.side,
        decision=DecisionKind(row.decision),
        reason=RejectionReason(row.reason) if row.reason is not None else None,
        detail=row.detail,
        inputs=row.inputs,
        output=row.output,
        client_order_id=row.client_order_id,
        decided_at=row.decided_at,
    )


async def insert_decision(
    session: AsyncSession,
    record: DecisionRecord,
    *,
    decision: DecisionKind,
    reason: RejectionReason | None,
    detail: str,
    extra_inputs: dict[str, Any] | None = None,
    client_order_id: str | None = None,
) -> DecisionView:
    """Add one audit row in the caller's transaction."""
    inputs = jsonable(dict(record.inputs))
    if extra_inputs:
        # Under its own key, so it never overwrites an input the caller recorded.
        inputs["ledger"] = jsonable(extra_inputs)
    values: dict[str, Any] = {
        "signal_id": record.signal_id,
        "strategy_id": record.strategy_id,
        "symbol": record.symbol,
        "side": str(record.side),
        "decision": decision.value,
        "reason": reason.value if reason is not None else None,
        "detail": detail,
        "inputs": inputs,
        "output": jsonable(dict(record.output)) if record.output is not None else None,
        "client_order_id": client_order_id,
        "exit_reason": record.exit_reason,
    }
    if record.decided_at is not None:
        values["decided_at"] = record.decided_at
    # One round trip: RETURNING brings back the id and the server's default decided_at. The
    # core insert (not the PostgreSQL dialect's, which SQLAlchemy never caches) compiles once.
    row = (await session.execute(insert(RiskDecision).values(**values).returning(*RiskDecision.__table__.c))).one()
    return decision_view(row)


async def read_decision(session: AsyncSession, signal_id: UUID) -> DecisionView | None:
    row = await session.scalar(
        select(RiskDecision).where(RiskDecision.signal_id == signal_id).order_by(RiskDecision.id.desc()).limit(1)
    )
    return decision_view(row) if row is not None else None


async def latest_signal_candle(session: AsyncSession, exchange: str, symbol: str, timeframe: str) -> datetime | None:
    """Open time of the latest candle of the market whose strategy signals are all decided."""
    return await session.scalar(select(SignalProgress.candle_time).where(
        SignalProgress.exchange == exchange, SignalProgress.symbol == symbol, SignalProgress.timeframe == timeframe,
    ))


async def record_signals_done(session: AsyncSession, exchange: str, symbol: str, timeframe: str,
                              candle_time: datetime) -> None:
    """Move the market's progress to ``candle_time`` (never back: a redelivered marker is older)."""
    statement = upsert(SignalProgress).values(exchange=exchange, symbol=symbol, timeframe=timeframe,
                                              candle_time=candle_time)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[SignalProgress.exchange, SignalProgress.symbol, SignalProgress.timeframe],
        set_={"candle_time": func.greatest(SignalProgress.candle_time, statement.excluded.candle_time),
              "updated_at": func.now()},
    ))


async def recent_order_times(
    session: AsyncSession, since: datetime, strategy_id: str | None, symbol: str | None
) -> list[datetime]:
    statement = select(RiskDecision.decided_at).where(
        RiskDecision.decision == DecisionKind.APPROVED.value, RiskDecision.decided_at >= since
    )
    if strategy_id is not None:
        statement = statement.where(RiskDecision.strategy_id == strategy_id)
    if symbol is not None:
        statement = statement.where(RiskDecision.symbol == symbol)
    return list((await session.scalars(statement.order_by(RiskDecision.decided_at))).all())


def _state_view(row: RiskState) -> RiskStateView:
    return RiskStateView(
        trading_state=TradingState(row.trading_state),
        trading_state_reason=row.trading_state_reason,
        emergency_stop=row.emergency_stop,
        emergency_reason=row.emergency_reason,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        peak_equity=row.peak_equity,
    )


async def _locked_state(session: AsyncSession, *, lock: bool = True) -> RiskState:
    # Migration 0002 inserts the row; recreating it keeps a hand-cleaned database working.
    await session.execute(
        upsert(RiskState)
        .values(id=_STATE_ID, trading_state=TradingState.ACTIVE.value, emergency_stop=False)
        .on_conflict_do_nothing(index_elements=[RiskState.id])
    )
    statement = select(RiskState).where(RiskState.id == _STATE_ID).execution_options(populate_existing=True)
    row = await session.scalar(statement.with_for_update() if lock else statement)
    assert row is not None  # just inserted or already there
    return row


async def read_state(session: AsyncSession) -> RiskStateView:
    # No row lock: readers (every signal, every metrics tick) must not queue behind each other.
    # A plain SELECT first: the insert in _locked_state, run inside account_view's REPEATABLE
    # READ snapshot, fails with a serialization error whenever a writer (the peak-equity
    # update) changed the row after the snapshot began; only a missing row needs it.
    row = await session.scalar(
        select(RiskState).where(RiskState.id == _STATE_ID).execution_options(populate_existing=True)
    )
    return _state_view(row if row is not None else await _locked_state(session, lock=False))


async def set_emergency_stop(
    session: AsyncSession, consumer: str, message_id: UUID, active: bool, reason: str, by: str
) -> bool:
    if not await claim_message(session, consumer, message_id):
        return False
    row = await _locked_state(session)
    # The reason of the last change is kept either way: "why was it released" matters too.
    row.emergency_stop, row.emergency_reason, row.changed_by = active, reason, by
    row.changed_at = func.now()
    await session.flush()
    _log.warning("emergency_stop_changed", active=active, reason=reason, by=by)
    return True


async def set_trading_state(session: AsyncSession, state: TradingState, reason: str, by: str) -> RiskStateView:
    row = await _locked_state(session)
    previous = row.trading_state
    row.trading_state, row.trading_state_reason = state.value, reason
    row.changed_by, row.changed_at = by, func.now()
    await session.flush()
    await session.refresh(row)
    if previous != state.value:
        _log.warning("trading_state_changed", previous=previous, state=state.value, reason=reason, by=by)
    return _state_view(row)


async def record_peak_equity(session: AsyncSession, equity: Decimal) -> Decimal:
    await _locked_state(session)
    peak = await session.scalar(
        update(RiskState)
        .where(RiskState.id == _STATE_ID)
        .values(peak_equity=func.greatest(func.coalesce(RiskState.peak_equity, equity), equity))
        .returning(RiskState.peak_equity)
        .execution_options(synchronize_session=False)
    )
    assert peak is not None
    return Decimal(peak)
