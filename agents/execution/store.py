"""The execution agent's Postgres record: orders, their transitions (an outbox of reports), the halt.

Every write that changes an order takes the row lock (SELECT ... FOR UPDATE), so the three
consumers (orders, control, candles) and reconciliation can answer for the same order at the
same time without inventing two transitions for one change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.execution.guard import Refusal, check_reservation
from agents.execution.lifecycle import Recorded, Transition, fees_after, fees_of, next_transition, report_for
from infra.db import claim_message, read_sessions
from infra.db.controls import record_control
from infra.db.durability import defer_flush
from infra.db.ledger import ReservationView
from infra.db.ledger.reservations import reservation_view
from infra.db.models import ExecutionHalt, Order, OrderEvent, Reservation
from infra.exchanges.adapter import OrderState
from protocol import (
    CancelOrder,
    ControlOutcome,
    EmergencyStop,
    ExecutionReport,
    OrderRequest,
    OrderStatus,
    decode,
    derive_message_id,
    encode,
)

__all__ = ["BadEvent", "Claim", "ClaimOutcome", "OrderRecord", "OrderStore"]

_ZERO = Decimal(0)
UNRESOLVED = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value, OrderStatus.UNKNOWN.value)


class ClaimOutcome(StrEnum):
    """What claiming an order message decided."""

    SUBMIT = "submit"  # a new order: send it to the exchange
    EXISTING = "existing"  # the order is known already (redelivery): resolve it, never place again
    SETTLED = "settled"  # decided without the exchange (expired, halted): only report it
    REFUSED = "refused"  # no matching HELD reservation: never placed, REJECTED with the code


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An orders row with its request decoded."""

    id: int
    request: OrderRequest
    status: OrderStatus
    filled: Decimal
    submit_attempts: int
    reported: bool
    updated_at: datetime  # last change; after a send, no earlier than the send (unknown.py)

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def symbol(self) -> str:
        return self.request.symbol


@dataclass(frozen=True, slots=True)
class BadEvent:
    """An outbox event that does not make a valid ExecutionReport (kept unpublished, alerted)."""

    event_id: int
    seq: int
    error: str


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    order: OrderRecord
    refusal: Refusal | None = None


class OrderStore:
    """Orders, transitions and the halt flag of one execution agent."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], source: str, *, exchange_in_database: bool = False) -> None:
        """``exchange_in_database``: the exchange keeps its orders in this same database (paper).

        Then a claim that leads to a placement, and the count of a send, commit without waiting
        for their disk flush (infra.db.durability): the transition recorded from the exchange's
        answer is committed synchronously before it is reported, and a Postgres crash before
        that loses the exchange's order with them, so the redelivered request places it afresh.
        A real exchange keeps its order through our crash: there both stay synchronous, so a
        send is always known before it happens."""
        self._sessions = sessions
        self._reads = read_sessions(sessions)  # one-statement reads, outside a transaction
        self._source = source
        self._defer_placement = exchange_in_database

    # ------------------------------------------------------------------ orders

    async def claim(self, request: OrderRequest, consumer: str, now: datetime) -> Claim:
        """Claim the message id and the client_order_id in one transaction.

        A SUBMIT claim counts the order's first send (``count_submit``) in the same transaction.
        A new order is placed only if the ledger holds its reservation (HELD, same terms),
        checked in this transaction with the reservation row locked: anything else is REFUSED
        (REJECTED with an OrderRefusal code). A new order that expired already, or arrives while
        the emergency stop is engaged, is settled here (EXPIRED / REJECTED) without ever
        reaching the exchange.
        """
        async with self._sessions.begin() as session:
            await claim_message(session, consumer, request.message_id)
            statement = (
                insert(Order)
                .values(
                    client_order_id=request.client_order_id,
                    request_message_id=request.message_id,
                    request=encode(request).decode(),
                    strategy_id=request.strategy_id,
                    exchange=request.exchange,
                    symbol=request.symbol,
                    side=request.side.value,
                    order_type=request.order_type.value,
                    quantity=request.quantity,
                    limit_price=request.limit_price,
                    # Placeholder until the exchange answers: the outcome is not known yet.
                    status=OrderStatus.UNKNOWN.value,
                    reason="not yet submitted",
                    expires_at=request.expires_at,
                    exit_reason=request.exit_reason.value if request.exit_reason is not None else None,
                )
                .on_conflict_do_nothing(index_elements=["client_order_id"])
                .returning(Order.id)
            )
            inserted = (await session.execute(statement)).scalar_one_or_none()
            row = await self._locked(session, request.client_order_id)
            if inserted is None:
                return Claim(ClaimOutcome.EXISTING, await self._record_of(session, row))
            refusal = check_reservation(request, await self._reservation(session, request.client_order_id))
            if refusal is not None:
                await self._apply(session, row, _plain_state(request, OrderStatus.REJECTED, refusal.reason, now))
                return Claim(ClaimOutcome.REFUSED, await self._record_of(session, row), refusal)
            settled = await self._settle_without_exchange(session, row, request, now)
            if settled is None:
                # The first send is counted here, committed before it as count_submit would be.
                row.submit_attempts += 1
                row.updated_at = datetime.now(UTC)
                if self._defer_placement:
                    await defer_flush(session)  # nothing is reported from this claim (see __init__)
                # Inserted just now and nothing applied: no event exists to count.
                return Claim(ClaimOutcome.SUBMIT, await self._record_of(session, row, reported=False))
            return Claim(settled, await self._record_of(session, row))

    async def _reservation(self, session: AsyncSession, client_order_id: str) -> ReservationView | None:
        # FOR SHARE: the risk manager cannot release it until this claim has committed; after
        # that the order exists, and the reservation is only closed by the order's reports.
        row = await session.scalar(
            select(Reservation).where(Reservation.client_order_id == client_order_id).with_for_update(read=True)
        )
        return None if row is None else reservation_view(row)

    async def _settle_without_exchange(
        self, session: AsyncSession, row: Order, request: OrderRequest, now: datetime
    ) -> ClaimOutcome | None:
        if request.expires_at <= now:
            reason = f"expired before placement (expires_at {request.expires_at.isoformat()})"
            await self._apply(session, row, _plain_state(request, OrderStatus.EXPIRED, reason, now))
            return ClaimOutcome.SETTLED
        halt = await session.get(ExecutionHalt, 1)
        if halt is not None and halt.active:
            reason = f"emergency stop engaged: {halt.reason}"
            await self._apply(session, row, _plain_state(request, OrderStatus.REJECTED, reason, now))
            return ClaimOutcome.SETTLED
        return None

    async def get(self, client_order_id: str) -> OrderRecord | None:
        async with self._reads() as session:
            row = await session.scalar(select(Order).where(Order.client_order_id == client_order_id))
            return None if row is None else await self._record_of(session, row)

    async def unresolved(self) -> list[OrderRecord]:
        """Orders that may still change: open at the exchange, or of unknown outcome."""
        async with self._reads() as session:
            rows = (await session.execute(select(Order).where(Order.status.in_(UNRESOLVED)).order_by(Order.id))).scalars()
            return [await self._record_of(session, row) for row in rows.all()]

    async def record(self, state: OrderState) -> Transition | None:
        """Store the transition ``state`` makes (if any) for its order; None when nothing changed."""
        async with self._sessions.begin() as session:
            row = await self._locked(session, state.client_order_id)
            # One answer can be several transitions (fills paying fees in two currencies); the
            # row is locked, so the sequence read once is ours to continue.
            last, last_seq = None, await self._last_seq(session, row)
            while (transition := await self._apply(session, row, state, last_seq)) is not None:
                last, last_seq = transition, (last_seq or 0) + 1
            return last

    async def record_status(self, request: OrderRequest, status: OrderStatus, reason: str, now: datetime) -> Transition | None:
        """Store a transition the agent decides itself (UNKNOWN after a timeout, EXPIRED, REJECTED)."""
        async with self._sessions.begin() as session:
            row = await self._locked(session, request.client_order_id)
            state = _plain_state(request, status, reason, now, filled=row.filled, average=row.average_price)
            return await self._apply(session, row, state)

    async def count_submit(self, client_order_id: str, delta: int = 1) -> int:
        """Note that the order is about to be sent to the exchange (committed before the send, so
        a crash during it is known); ``delta=-1`` takes back a send the exchange refused to
        process (rate limit). The number of sends so far."""
        async with self._sessions.begin() as session:
            if self._defer_placement:
                await defer_flush(session)  # see __init__
            result = await session.execute(
                update(Order)
                .where(Order.client_order_id == client_order_id)
                .values(submit_attempts=Order.submit_attempts + delta, updated_at=func.now())
                .returning(Order.submit_attempts)
            )
            return int(result.scalar_one())

    # ------------------------------------------------------------------ outbox

    async def unpublished(self, client_order_id: str | None = None) -> list[tuple[int, ExecutionReport | BadEvent]]:
        """Reports of transitions not yet published, oldest first. An event that does not make a
        valid report comes back as a :class:`BadEvent` in its place, so it cannot stop the others."""
        async with self._reads() as session:
            query = (
                select(OrderEvent, Order.request)
                .join(Order, Order.id == OrderEvent.order_id)
                .where(OrderEvent.published_at.is_(None))
                .order_by(OrderEvent.id)
            )
            if client_order_id is not None:
                query = query.where(Order.client_order_id == client_order_id)
            rows = (await session.execute(query)).all()
        return [(event.id, self._report_or_bad(request, event)) for event, request in rows]

    def _report_or_bad(self, request_json: str, event: OrderEvent) -> ExecutionReport | BadEvent:
        try:
            return self._report(request_json, event)
        except (ValueError, AssertionError) as exc:  # pydantic's ValidationError is a ValueError
            return BadEvent(event.id, event.seq, f"{type(exc).__name__}: {exc}")

    async def latest_report(self, client_order_id: str) -> ExecutionReport | None:
        """The report of the order's latest transition (re-published as is: same id)."""
        async with self._reads() as session:
            found = (
                await session.execute(
                    select(OrderEvent, Order.request)
                    .join(Order, Order.id == OrderEvent.order_id)
                    .where(Order.client_order_id == client_order_id)
                    .order_by(OrderEvent.seq.desc())
                    .limit(1)
                )
            ).first()
        if found is None:
            return None
        report = self._report_or_bad(found[1], found[0])
        return report if isinstance(report, ExecutionReport) else None

    async def mark_published(self, event_ids: Sequence[int]) -> None:
        if not event_ids:
            return
        async with self._sessions.begin() as session:
            # A mark lost with a Postgres crash only re-publishes the report under its own
            # message id, which every consumer deduplicates: never worth a disk flush.
            await defer_flush(session)
            await session.execute(
                update(OrderEvent).where(OrderEvent.id.in_(event_ids)).values(published_at=datetime.now(UTC))
            )

    # ------------------------------------------------------------------ halt

    async def halt_state(self) -> tuple[bool, str | None]:
        async with self._reads() as session:
            halt = await session.get(ExecutionHalt, 1)
        return (False, None) if halt is None else (halt.active, halt.reason)

    async def apply_halt(self, command: EmergencyStop) -> bool:
        """Engage or release the stop unless a newer command was applied already; True if applied."""
        statement = insert(ExecutionHalt).values(
            id=1, active=command.active, reason=command.reason, changed_at=command.produced_at, message_id=command.message_id
        )
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"active": command.active, "reason": command.reason, "changed_at": command.produced_at,
                  "message_id": command.message_id},
            where=ExecutionHalt.changed_at <= command.produced_at,
        ).returning(ExecutionHalt.id)
        async with self._sessions.begin() as session:
            return (await session.execute(statement)).scalar_one_or_none() is not None

    async def claim_control(self, command: CancelOrder | EmergencyStop, consumer: str) -> bool:
        """Record a control command as processed (audit); True the first time."""
        async with self._sessions.begin() as session:
            return await claim_message(session, consumer, command.message_id)

    async def record_control(
        self, command: CancelOrder | EmergencyStop, outcome: ControlOutcome, detail: str, client_order_id: str | None = None
    ) -> bool:
        """Record what this agent did with a control in the ledger's ``controls``; once per message."""
        async with self._sessions.begin() as session:
            return await record_control(session, command, self._source, outcome, detail, client_order_id)

    # ------------------------------------------------------------------ internals

    async def _locked(self, session: AsyncSession, client_order_id: str) -> Order:
        row = await session.scalar(select(Order).where(Order.client_order_id == client_order_id).with_for_update())
        if row is None:
            raise KeyError(f"no order {client_order_id}")
        return row

    async def _record_of(self, session: AsyncSession, row: Order, *, reported: bool | None = None) -> OrderRecord:
        """``reported``: whether the order has events, when the caller knows (else counted)."""
        if reported is None:
            reported = bool(await session.scalar(
                select(func.count()).select_from(OrderEvent).where(OrderEvent.order_id == row.id)))
        return OrderRecord(
            id=row.id,
            request=decode(row.request, OrderRequest),
            status=OrderStatus(row.status),
            filled=row.filled,
            submit_attempts=row.submit_attempts,
            reported=bool(reported),
            updated_at=row.updated_at,
        )

    async def _last_seq(self, session: AsyncSession, row: Order) -> int | None:
        return await session.scalar(select(func.max(OrderEvent.seq)).where(OrderEvent.order_id == row.id))

    async def _apply(
        self, session: AsyncSession, row: Order, state: OrderState, last_seq: int | None | Literal["read"] = "read"
    ) -> Transition | None:
        """Record the transition ``state`` makes for the locked ``row``; ``last_seq`` its
        newest event's seq when the caller knows it (None: no event yet)."""
        if last_seq == "read":
            last_seq = await self._last_seq(session, row)
        assert last_seq != "read"
        recorded = Recorded(OrderStatus(row.status), row.filled, row.average_price, fees_of(row.fees), reported=last_seq is not None)
        transition = next_transition(recorded, state)
        if transition is None:
            return None
        seq = (last_seq or 0) + 1
        request_id = row.request_message_id
        session.add(
            OrderEvent(
                order_id=row.id,
                seq=seq,
                message_id=derive_message_id(request_id, ExecutionReport.schema_id(), str(seq)),
                status=transition.status.value,
                cumulative_filled=transition.cumulative_filled,
                last_fill_quantity=transition.last_fill_quantity,
                last_fill_price=transition.last_fill_price,
                average_price=transition.average_price,
                fee=transition.fee,
                fee_currency=transition.fee_currency,
                trade_id=transition.trade_id,
                exchange_order_id=transition.exchange_order_id,
                reason=transition.reason,
                event_time=transition.event_time,
            )
        )
        row.status = transition.status.value
        row.filled = transition.cumulative_filled
        row.average_price = transition.average_price
        row.fees = fees_after(row.fees, transition)
        row.exchange_order_id = transition.exchange_order_id or row.exchange_order_id
        row.reason = transition.reason
        row.updated_at = datetime.now(UTC)
        await session.flush()
        return transition

    def _report(self, request_json: str, event: OrderEvent) -> ExecutionReport:
        transition = Transition(
            status=OrderStatus(event.status),
            cumulative_filled=event.cumulative_filled,
            last_fill_quantity=event.last_fill_quantity,
            last_fill_price=event.last_fill_price,
            average_price=event.average_price,
            fee=event.fee,
            fee_currency=event.fee_currency,
            trade_id=event.trade_id,
            exchange_order_id=event.exchange_order_id,
            reason=event.reason,
            event_time=event.event_time,
        )
        report = report_for(decode(request_json, OrderRequest), event.seq, transition, self._source)
        assert report.message_id == event.message_id
        return report


def _plain_state(
    request: OrderRequest,
    status: OrderStatus,
    reason: str,
    now: datetime,
    *,
    filled: Decimal = _ZERO,
    average: Decimal | None = None,
) -> OrderState:
    return OrderState(
        client_order_id=request.client_order_id,
        symbol=request.symbol,
        status=status,
        quantity=request.quantity,
        filled=filled,
        average_price=average,
        event_time=now,
        reason=reason,
    )
