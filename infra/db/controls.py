"""The record of operator controls (table ``controls``) and the strategy pauses.

Every agent that applies a control calls :func:`record_control` in the SAME transaction as the
control's effect: the row is the idempotency claim (UNIQUE message id and agent), so a
redelivered control finds it, changes nothing and records nothing twice. Reading is for the
console (the API) and the CLI: :func:`read_controls`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db.models import Control, StrategyPause
from protocol.enums import ControlKind, ControlOutcome
from protocol.messages.control import ControlMessage, PauseStrategy, control_kind, control_target, requested_by

__all__ = [
    "ControlView",
    "PauseView",
    "control_recorded",
    "newer_stop_applied",
    "read_controls",
    "read_pause",
    "record_control",
    "set_pause",
]


@dataclass(frozen=True, slots=True)
class ControlView:
    """One row of ``controls``."""

    message_id: uuid.UUID
    agent: str
    kind: ControlKind
    target: str
    requested_by: str
    reason: str
    source: str
    requested_at: datetime
    received_at: datetime
    outcome: ControlOutcome
    detail: str
    client_order_id: str | None


@dataclass(frozen=True, slots=True)
class PauseView:
    """A strategy instance's pause state as persisted."""

    strategy_id: str
    paused: bool
    reason: str
    requested_by: str
    changed_at: datetime


async def record_control(
    session: AsyncSession,
    message: ControlMessage,
    agent: str,
    outcome: ControlOutcome,
    detail: str,
    client_order_id: str | None = None,
) -> bool:
    """Insert the control's row in the caller's transaction; False if ``agent`` recorded this
    message already (a redelivery: apply nothing). Blocks while a concurrent delivery of the same
    message holds its insert, like ``claim_message``."""
    statement = (
        insert(Control)
        .values(
            message_id=message.message_id, agent=agent, kind=control_kind(message).value,
            target=control_target(message), requested_by=requested_by(message), reason=message.reason,
            source=message.source, requested_at=message.produced_at, outcome=outcome.value, detail=detail,
            client_order_id=client_order_id,
        )
        .on_conflict_do_nothing(index_elements=[Control.message_id, Control.agent])
        .returning(Control.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def control_recorded(session: AsyncSession, message_id: uuid.UUID, agent: str) -> bool:
    """Whether ``agent`` has recorded this control already."""
    found = await session.scalar(select(Control.id).where(Control.message_id == message_id, Control.agent == agent))
    return found is not None


async def newer_stop_applied(session: AsyncSession, agent: str, produced_at: datetime) -> bool:
    """Whether ``agent`` applied an emergency-stop command produced after ``produced_at``.

    Deliveries are not in production order (a retried command goes to the back of its queue),
    so a release delayed past a later engage would otherwise undo the operator's latest word;
    execution orders its halt by ``produced_at`` the same way."""
    found = await session.scalar(
        select(Control.id).where(
            Control.agent == agent,
            Control.kind.in_([ControlKind.ENGAGE_STOP.value, ControlKind.RELEASE_STOP.value]),
            Control.outcome == ControlOutcome.APPLIED.value,
            Control.requested_at > produced_at,
        ).limit(1)
    )
    return found is not None


async def set_pause(session: AsyncSession, command: PauseStrategy) -> bool:
    """Pause or resume the strategy unless a newer command was applied already; True if applied.

    Ordered by the command's ``produced_at``: a pause delivered after a later resume (a retry
    from an earlier outage) never undoes the resume."""
    values = {"paused": command.paused, "reason": command.reason, "requested_by": command.requested_by,
              "changed_at": command.produced_at, "message_id": command.message_id}
    statement = (
        insert(StrategyPause)
        .values(strategy_id=command.strategy_id, **values)
        .on_conflict_do_update(index_elements=[StrategyPause.strategy_id], set_=values,
                               where=StrategyPause.changed_at <= command.produced_at)
        .returning(StrategyPause.strategy_id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def read_pause(session: AsyncSession, strategy_id: str) -> PauseView | None:
    """The strategy's pause row (paused or resumed), or None if it was never paused."""
    row = await session.get(StrategyPause, strategy_id)
    if row is None:
        return None
    return PauseView(row.strategy_id, row.paused, row.reason, row.requested_by, row.changed_at)


async def read_controls(
    sessions: async_sessionmaker[AsyncSession], *, limit: int = 100, message_id: uuid.UUID | None = None
) -> list[ControlView]:
    """The newest controls first (all agents' rows), or every row of one message."""
    query = select(Control).order_by(Control.received_at.desc(), Control.id.desc()).limit(limit)
    if message_id is not None:
        query = query.where(Control.message_id == message_id)
    async with sessions() as session:
        rows = (await session.scalars(query)).all()
    return [
        ControlView(
            message_id=row.message_id, agent=row.agent, kind=ControlKind(row.kind), target=row.target,
            requested_by=row.requested_by, reason=row.reason, source=row.source, requested_at=row.requested_at,
            received_at=row.received_at, outcome=ControlOutcome(row.outcome), detail=row.detail,
            client_order_id=row.client_order_id,
        )
        for row in rows
    ]
