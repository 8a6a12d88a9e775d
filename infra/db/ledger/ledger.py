"""The ``Ledger`` facade: each call a complete, consistent change in one transaction.

The risk manager is the only writer. Every method opens its own session and transaction, so a
call either commits all its effects (balances, reservation, position, fills, audit, processed
message id) or none. The invariants themselves live in the database (CHECK constraints, UNIQUE
client_order_id and trade id); the code below never relies on being the only process running.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db import controls as control_ops
from infra.db.durability import defer_flush
from infra.db.engine import read_sessions
from infra.db.idempotency import claim_message
from infra.db.ledger import balances as balance_ops
from infra.db.ledger.batching import ApprovalBatcher
from infra.db.ledger import reservations as reservation_ops
from infra.db.ledger import risk as risk_ops
from infra.db.ledger import settlement as settlement_ops
from infra.db.ledger.types import (
    AccountCheck,
    AccountView,
    LedgerError,
    ApproveOutcome,
    BalanceView,
    DecisionRecord,
    DecisionView,
    NewReservation,
    PositionView,
    ReservationStatus,
    ReservationView,
    RiskStateView,
    SettlementOutcome,
)
from protocol.enums import ControlOutcome, TradingState
from protocol.messages import EmergencyStop, ExecutionReport, PauseStrategy
from protocol.messages.control import ControlMessage

__all__ = ["Ledger"]


class Ledger:
    """The account's ledger in Postgres: balances, reservations, positions, fills, risk state.

    ``sessions`` is ``infra.db.session_factory(engine)``. Safe to use from many concurrent
    tasks and processes: each call is its own transaction (concurrent approvals share one,
    each in a savepoint, see :meth:`approve`) and concurrency is resolved by row locks and
    conditional updates in Postgres (READ COMMITTED, the default).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # One-statement reads run outside a transaction (infra.db.engine.read_sessions).
        self._reads = read_sessions(sessions)
        self._approvals = ApprovalBatcher(sessions)

    # --- balances and positions ------------------------------------------------------------

    async def ensure_initial_balances(self, balances: Mapping[str, Decimal]) -> bool:
        """Seed the (paper) account with ``balances`` only if the balances table is empty.

        Returns True if it seeded. Idempotent and race-free (a table lock serialises two
        starting processes); an account that already has balances is never touched.
        """
        async with self._sessions() as session, session.begin():
            return await balance_ops.seed(session, balances)

    async def balances(self) -> dict[str, BalanceView]:
        """Every asset's balance, keyed by asset code."""
        async with self._reads() as session:
            return await balance_ops.read_all(session)

    async def balance(self, asset: str) -> BalanceView | None:
        """One asset's balance, or None if the account never held it."""
        async with self._reads() as session:
            return await balance_ops.read_one(session, asset)

    async def positions(self, strategy_id: str | None = None) -> list[PositionView]:
        """All positions (flat ones included), optionally of one strategy, in key order."""
        async with self._reads() as session:
            return await settlement_ops.read_positions(session, strategy_id)

    async def position(self, strategy_id: str, exchange: str, symbol: str) -> PositionView | None:
        """One strategy's position in one symbol, or None if it never traded it."""
        async with self._reads() as session:
            return await settlement_ops.read_position(session, strategy_id, exchange, symbol)

    # --- decisions and reservations --------------------------------------------------------

    async def approve(
        self, consumer: str, message_id: UUID, reservation: NewReservation, decision: DecisionRecord,
        account_check: AccountCheck | None = None,
    ) -> ApproveOutcome:
        """Reserve balance for an approved order, in ONE transaction with its audit row.

        Claims ``message_id`` for ``consumer``; then ``UPDATE balances SET available =
        available - amount, reserved = reserved + amount WHERE asset = :asset AND available >=
        amount`` (one atomic conditional update: concurrent approvals can never reserve more
        than is available); inserts the reservation and the APPROVED audit row. If the update
        matched nothing, the audit row is REJECTED / INSUFFICIENT_BALANCE instead and nothing is
        reserved. A message already processed returns DUPLICATE with the original reservation
        and decision. Raises LedgerError for a non-positive amount or a client_order_id that
        already has a reservation under another message.

        ``account_check`` (the risk manager's, for every BUY): the account-wide limits decided
        again under the account lock, on the positions and open BUYs as they stand, with every
        concurrent BUY of any symbol and process counted (:mod:`infra.db.ledger.account_lock`,
        decision 0029). A refusal is audited REJECTED with the check's reason and figures, the
        hold undone, and answered REFUSED.

        Approvals made concurrently in this process share one transaction, each in its own
        savepoint (:mod:`infra.db.ledger.batching`): the same checks, one disk flush.
        """
        return await self._approvals.approve(consumer, message_id, reservation, decision, account_check)

    async def reject(self, consumer: str, message_id: UUID, decision: DecisionRecord) -> bool:
        """Audit a rejection (or IGNORED decision) and claim ``message_id``, in one transaction.

        Returns False (and records nothing) if the message was already processed; the
        caller then re-publishes the rejection from :meth:`decision`.
        """
        async with self._sessions() as session, session.begin():
            return await reservation_ops.reject(session, consumer, message_id, decision)

    async def decision(self, signal_id: UUID) -> DecisionView | None:
        """The latest audited decision for ``signal_id``, or None."""
        async with self._reads() as session:
            return await risk_ops.read_decision(session, signal_id)

    async def latest_signal_candle(self, exchange: str, symbol: str, timeframe: str) -> datetime | None:
        """Open time of the latest candle whose strategy signals are all decided (decision 0028)."""
        async with self._reads() as session:
            return await risk_ops.latest_signal_candle(session, exchange, symbol, timeframe)

    async def record_signals_done(self, exchange: str, symbol: str, timeframe: str, candle_time: datetime) -> None:
        """The strategies' signals of the candle at ``candle_time`` are all decided. Committed
        without waiting for its disk flush (infra.db.durability): losing it in a Postgres crash
        only makes the next candle's exits wait for the following marker (or the bound)."""
        async with self._sessions() as session, session.begin():
            await defer_flush(session)
            await risk_ops.record_signals_done(session, exchange, symbol, timeframe, candle_time)

    async def reservation(self, client_order_id: str) -> ReservationView | None:
        """The reservation of one order, or None."""
        async with self._reads() as session:
            return await reservation_ops.read_one(session, client_order_id)

    async def open_reservations(self, exchange: str | None = None, symbol: str | None = None) -> list[ReservationView]:
        """Reservations still holding balance (HELD or PARTIALLY_SETTLED), oldest first;
        only those of ``exchange`` / ``symbol`` when given."""
        async with self._reads() as session:
            return await reservation_ops.read_open(session, exchange, symbol)

    async def expired_reservations(self, now: datetime) -> list[ReservationView]:
        """Open reservations (HELD or PARTIALLY_SETTLED) with ``expires_at <= now``.

        Only a candidate list: release one only when its order is known never to have reached
        the exchange, or to be terminal; otherwise ask execution to reconcile.
        """
        async with self._reads() as session:
            return await reservation_ops.read_expired(session, now)

    async def release(
        self, client_order_id: str, status: ReservationStatus = ReservationStatus.EXPIRED
    ) -> bool:
        """Give what a reservation still holds back to available and close it with ``status``.

        ``status`` is EXPIRED (the sweeper), RELEASED or SETTLED. Returns False if it was
        already closed (idempotent); raises LedgerError for an unknown client_order_id.
        """
        async with self._sessions() as session, session.begin():
            return await reservation_ops.release(session, client_order_id, status)

    # --- execution reports -----------------------------------------------------------------

    async def apply_report(self, consumer: str, report: ExecutionReport) -> SettlementOutcome:
        """Settle one execution report; idempotent by message id and by cumulative quantity.

        See :mod:`infra.db.ledger.settlement` for the rules (fees, slippage beyond the buffer,
        re-ordered and duplicated reports). A report is the exchange's account of what happened,
        so it is never refused into a dead-letter loop: a charge the balances cannot cover is
        booked as far as they go (``shortfalls``); a report that cannot be booked at all (a fill
        of an order the ledger never reserved, a SELL larger than the position, a report that
        does not match its reservation) only has its message id recorded (``unbooked``). Either
        way the trading state becomes REDUCING (no new BUYs) with the reason, in the same
        transaction, until an operator has reconciled the ledger and set it ACTIVE again.
        """
        async with self._sessions() as session, session.begin():
            try:
                async with session.begin_nested():
                    outcome = await settlement_ops.apply_report(session, consumer, report)
            except LedgerError as exc:
                outcome = await settlement_ops.record_unbooked(session, consumer, report, str(exc))
            if outcome.applied and outcome.problem is not None:
                await risk_ops.set_trading_state(
                    session, TradingState.REDUCING,
                    f"execution report {report.message_id} ({report.client_order_id}): {outcome.problem}",
                    by="ledger",
                )
            return outcome

    # --- risk state ------------------------------------------------------------------------

    async def account_view(self) -> AccountView:
        """Risk state, balances, positions and open reservations as of ONE instant.

        Read in one REPEATABLE READ transaction: separate reads could straddle a settlement
        (positions read before a SELL settled, reservations after it) and show a position
        that is already sold as still sellable.
        """
        async with self._sessions() as session:
            # Begins the session's transaction at this isolation level; closing rolls it back.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            return AccountView(
                risk_state=await risk_ops.read_state(session),
                balances=await balance_ops.read_all(session),
                positions=await settlement_ops.read_positions(session, None),
                open_reservations=await reservation_ops.read_open(session),
            )

    async def risk_state(self) -> RiskStateView:
        """The persisted trading state, emergency stop and peak equity."""
        async with self._sessions() as session, session.begin():
            return await risk_ops.read_state(session)

    async def set_emergency_stop(
        self, consumer: str, message_id: UUID, active: bool, reason: str, by: str
    ) -> bool:
        """Engage or release the emergency stop (control.emergency_stop); idempotent by message.

        Returns False if ``message_id`` was already processed (nothing changed).
        """
        async with self._sessions() as session, session.begin():
            return await risk_ops.set_emergency_stop(session, consumer, message_id, active, reason, by)

    async def apply_emergency_stop(self, consumer: str, command: EmergencyStop, agent: str) -> bool:
        """:meth:`set_emergency_stop` and its row in ``controls``, in one transaction. A command
        older than the last one applied changes nothing and is recorded REFUSED (as for a pause)."""
        async with self._sessions() as session, session.begin():
            if await control_ops.newer_stop_applied(session, agent, command.produced_at):
                if not await claim_message(session, consumer, command.message_id):
                    return False  # a redelivery of a command refused already
                detail = "a newer emergency-stop command was applied already; this older one changes nothing"
                await control_ops.record_control(session, command, agent, ControlOutcome.REFUSED, detail)
                return False
            changed = await risk_ops.set_emergency_stop(
                session, consumer, command.message_id, command.active, command.reason, command.requested_by
            )
            if changed:
                detail = f"emergency stop {'engaged' if command.active else 'released'}: no signal is approved while engaged"
                await control_ops.record_control(session, command, agent, ControlOutcome.APPLIED, detail)
            return changed

    async def apply_pause(self, command: PauseStrategy, agent: str) -> bool:
        """Pause or resume one strategy instance and record the control, in one transaction.

        Returns False for a redelivery (recorded already: nothing changes). A command older than
        the strategy's latest pause/resume changes nothing and is recorded REFUSED."""
        async with self._sessions() as session, session.begin():
            if await control_ops.control_recorded(session, command.message_id, agent):
                return False
            if await control_ops.set_pause(session, command):
                state = "paused: its BUY signals are rejected STRATEGY_PAUSED" if command.paused else "resumed"
                outcome, detail = ControlOutcome.APPLIED, f"strategy {command.strategy_id} {state}"
            else:
                outcome = ControlOutcome.REFUSED
                detail = f"a newer pause/resume of {command.strategy_id} was applied already; this older one changes nothing"
            return await control_ops.record_control(session, command, agent, outcome, detail)

    async def strategy_pause(self, strategy_id: str) -> control_ops.PauseView | None:
        """The strategy instance's persisted pause state (None: never paused)."""
        async with self._reads() as session:
            return await control_ops.read_pause(session, strategy_id)

    async def record_control(
        self, message: ControlMessage, agent: str, outcome: ControlOutcome, detail: str, client_order_id: str | None = None
    ) -> bool:
        """Record a control whose effect was committed on its own (a close's decision); once."""
        async with self._sessions() as session, session.begin():
            return await control_ops.record_control(session, message, agent, outcome, detail, client_order_id)

    async def set_trading_state(
        self, state: TradingState, reason: str, by: str = "risk_manager"
    ) -> RiskStateView:
        """Persist a trading state (ACTIVE / REDUCING / HALTED) with its reason."""
        async with self._sessions() as session, session.begin():
            return await risk_ops.set_trading_state(session, state, reason, by)

    async def recent_order_times(
        self, since: datetime, strategy_id: str | None = None, symbol: str | None = None
    ) -> list[datetime]:
        """``decided_at`` of APPROVED decisions at or after ``since``, oldest first."""
        async with self._reads() as session:
            return await risk_ops.recent_order_times(session, since, strategy_id, symbol)

    async def record_peak_equity(self, equity: Decimal, known_peak: Decimal | None = None) -> Decimal:
        """Store ``equity`` if it is a new peak; return the peak so far (persisted).

        ``known_peak`` (a decision in progress): the peak read from the ledger for it (the
        account view). The peak only ever grows, so equity at or below it changes nothing and
        is answered without a transaction: most decisions are not a new peak, and each write
        would be a row lock every risk-manager instance queues on, plus a commit. A decision's
        new peak commits without waiting for its disk flush: the decision commits synchronously
        right after (infra.db.durability), and a redelivered signal recomputes the same peak."""
        deciding = known_peak is not None
        if known_peak is not None and equity <= known_peak:
            return known_peak
        async with self._sessions() as session, session.begin():
            if deciding:
                await defer_flush(session)
            return await risk_ops.record_peak_equity(session, equity)
