"""Ledger on real Postgres: reservations under concurrency, idempotency, audit, risk state, schema."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from infra.db import alembic_config, create_engine, current_revision, head_revision, session_factory, upgrade_head
from infra.db.ledger import (
    ApproveStatus,
    DecisionKind,
    DecisionRecord,
    Ledger,
    LedgerError,
    ReservationStatus,
)
from protocol.enums import RejectionReason, Side, TradingState
from tests.support.ledger import (
    CONSUMER,
    D,
    STRATEGY,
    SYMBOL,
    decision_for,
    invariants_hold,
    migrated_ledger,
    new_reservation,
    reserve,
)

pytestmark = pytest.mark.integration

ATTEMPTS = 200
POOL = 20


async def test_concurrent_reservations_never_exceed_the_balance(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000")}, pool_size=POOL) as (ledger, engine):
        reservations = [new_reservation(amount=D("7.01")) for _ in range(ATTEMPTS)]
        start = asyncio.Barrier(ATTEMPTS)

        async def attempt(index: int) -> ApproveStatus:
            await start.wait()
            item = reservations[index]
            return (await ledger.approve(CONSUMER, item.signal_id, item, decision_for(item))).status

        outcomes = await asyncio.gather(*(attempt(i) for i in range(ATTEMPTS)))
        accepted = outcomes.count(ApproveStatus.RESERVED)
        assert accepted == 142  # floor(1000 / 7.01): every unit that fits, and not one more
        assert outcomes.count(ApproveStatus.INSUFFICIENT_BALANCE) == ATTEMPTS - accepted
        balance = (await ledger.balances())["USDT"]
        assert balance.reserved == D("7.01") * accepted == D("995.42")
        assert balance.available == D("4.58")
        assert balance.total == D("1000")
        await invariants_hold(engine)
        async with engine.connect() as conn:
            counts = dict(
                (await conn.execute(text("SELECT decision, count(*) FROM risk_decisions GROUP BY decision"))).all()
            )
            claimed = (await conn.execute(text("SELECT count(*) FROM processed_messages"))).scalar_one()
        # Every attempt is audited and claimed: the rejections too.
        assert counts == {"APPROVED": accepted, "REJECTED": ATTEMPTS - accepted}
        assert claimed == ATTEMPTS


async def test_same_message_twice_reserves_once(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000")}, pool_size=POOL) as (ledger, engine):
        item = new_reservation(amount=D("150"))
        decision = decision_for(item, atr=D("1.25"))
        outcomes = await asyncio.gather(*(ledger.approve(CONSUMER, item.signal_id, item, decision) for _ in range(10)))
        assert sorted(o.status for o in outcomes).count(ApproveStatus.RESERVED) == 1
        assert {o.status for o in outcomes} == {ApproveStatus.RESERVED, ApproveStatus.DUPLICATE}
        first = next(o for o in outcomes if o.status is ApproveStatus.RESERVED)
        for duplicate in (o for o in outcomes if o.status is ApproveStatus.DUPLICATE):
            assert duplicate.reservation == first.reservation
            assert duplicate.decision == first.decision
        assert first.decision is not None and first.decision.decision is DecisionKind.APPROVED
        # The audit keeps every input as the exact decimal text, plus what the ledger saw.
        assert first.decision.inputs["reference_price"] == "100"
        assert first.decision.inputs["atr"] == "1.25"
        assert first.decision.inputs["ledger"]["available"] == "1000"
        assert first.decision.client_order_id == item.client_order_id
        balance = (await ledger.balances())["USDT"]
        assert (balance.available, balance.reserved, balance.total) == (D("850"), D("150"), D("1000"))
        assert first.available == D("850")
        await invariants_hold(engine)


async def test_insufficient_balance_is_audited_and_claimed(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("100")}) as (ledger, _):
        item = new_reservation(amount=D("100.01"))
        outcome = await ledger.approve(CONSUMER, item.signal_id, item, decision_for(item))
        assert outcome.status is ApproveStatus.INSUFFICIENT_BALANCE
        assert outcome.reservation is None and outcome.available == D("100")
        assert outcome.decision is not None
        assert outcome.decision.reason is RejectionReason.INSUFFICIENT_BALANCE
        assert outcome.decision.detail == "USDT: 100.01 needed, 100 available"
        again = await ledger.approve(CONSUMER, item.signal_id, item, decision_for(item))
        assert again.status is ApproveStatus.DUPLICATE and again.reservation is None
        assert again.decision == outcome.decision
        # An asset the account never held is simply not available.
        eth = new_reservation(amount=D("1"), symbol="BTC/ETH")
        missing = await ledger.approve(CONSUMER, eth.signal_id, eth, decision_for(eth))
        assert missing.status is ApproveStatus.INSUFFICIENT_BALANCE and missing.available == D("0")
        assert await ledger.reservation(item.client_order_id) is None
        assert (await ledger.balances())["USDT"].available == D("100")


async def test_reject_audits_once_with_inputs(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("100")}) as (ledger, _):
        signal_id = uuid.uuid4()
        decided_at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        record = DecisionRecord(
            signal_id=signal_id,
            strategy_id=STRATEGY,
            symbol=SYMBOL,
            side="BUY",
            detail="price 30.5s old > 10s",
            inputs={"price_age_seconds": D("30.5"), "max_age": 10, "at": decided_at},
            reason=RejectionReason.STALE_PRICE,
            decided_at=decided_at,
        )
        assert await ledger.reject(CONSUMER, signal_id, record) is True
        assert await ledger.reject(CONSUMER, signal_id, record) is False
        view = await ledger.decision(signal_id)
        assert view is not None and view.decision is DecisionKind.REJECTED
        assert view.reason is RejectionReason.STALE_PRICE and view.decided_at == decided_at
        assert view.inputs == {"price_age_seconds": "30.5", "max_age": 10, "at": decided_at.isoformat()}
        approval = DecisionRecord(**{**_fields(record), "decision": DecisionKind.APPROVED})
        with pytest.raises(LedgerError, match="approve"):
            await ledger.reject(CONSUMER, uuid.uuid4(), approval)


async def test_recent_order_times_counts_approvals_only(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000")}) as (ledger, _):
        base = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        for minutes in (0, 30, 90):
            item = new_reservation(amount=D("10"))
            record = DecisionRecord(**{**_fields(decision_for(item)), "decided_at": base + timedelta(minutes=minutes)})
            await ledger.approve(CONSUMER, item.signal_id, item, record)
        rejected = DecisionRecord(
            signal_id=uuid.uuid4(), strategy_id=STRATEGY, symbol=SYMBOL, side="BUY", detail="low",
            reason=RejectionReason.LOW_CONFIDENCE, decided_at=base + timedelta(minutes=95),
        )
        await ledger.reject(CONSUMER, rejected.signal_id, rejected)
        since = base + timedelta(minutes=20)
        assert await ledger.recent_order_times(since) == [base + timedelta(minutes=30), base + timedelta(minutes=90)]
        assert await ledger.recent_order_times(since, strategy_id="other") == []
        assert len(await ledger.recent_order_times(base, strategy_id=STRATEGY, symbol=SYMBOL)) == 3


def _fields(record: DecisionRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


async def test_expired_reservations_and_release(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000")}) as (ledger, engine):
        stale = new_reservation(amount=D("100"), expires_in=timedelta(seconds=-1))
        fresh = new_reservation(amount=D("50"))
        await reserve(ledger, stale)
        await reserve(ledger, fresh)
        now = datetime.now(UTC)
        assert [r.client_order_id for r in await ledger.expired_reservations(now)] == [stale.client_order_id]
        assert {r.client_order_id for r in await ledger.open_reservations()} == {
            stale.client_order_id,
            fresh.client_order_id,
        }
        assert await ledger.release(stale.client_order_id, ReservationStatus.EXPIRED) is True
        assert await ledger.release(stale.client_order_id, ReservationStatus.EXPIRED) is False
        view = await ledger.reservation(stale.client_order_id)
        assert view is not None and view.status is ReservationStatus.EXPIRED and view.remaining == 0
        assert view.amount == D("100")
        assert await ledger.expired_reservations(now) == []
        balance = (await ledger.balances())["USDT"]
        assert (balance.available, balance.reserved) == (D("950"), D("50"))
        await invariants_hold(engine)
        with pytest.raises(LedgerError, match="no reservation"):
            await ledger.release("tb-unknown")
        with pytest.raises(LedgerError, match="closing status"):
            await ledger.release(fresh.client_order_id, ReservationStatus.HELD)


async def test_check_constraints_refuse_direct_invalid_updates(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000"), "BTC": D("0")}) as (ledger, engine):
        item = new_reservation(amount=D("100"))
        await reserve(ledger, item)
        bad_updates = {
            "ck_balances_total_is_available_plus_reserved": "UPDATE balances SET available = available + 1 WHERE asset = 'USDT'",
            "ck_balances_available_non_negative": "UPDATE balances SET available = -1, total = reserved - 1 WHERE asset = 'USDT'",
            "ck_balances_reserved_non_negative": "UPDATE balances SET reserved = -1, total = available - 1 WHERE asset = 'BTC'",
            "ck_reservations_remaining_within_amount": "UPDATE reservations SET remaining = amount + 1",
            "ck_reservations_closed_holds_nothing": "UPDATE reservations SET status = 'SETTLED'",
            "uq_reservations_client_order_id": "INSERT INTO reservations (client_order_id, signal_id, strategy_id, "
            "exchange, symbol, side, asset, amount, remaining, quantity, status, expires_at) SELECT client_order_id, "
            "signal_id, strategy_id, exchange, symbol, side, asset, amount, remaining, quantity, status, expires_at "
            "FROM reservations",
            "ck_positions_fees_paid_non_negative": "INSERT INTO positions VALUES ('s', 'paper', 'BTC/USDT', 1, 1, 0, -1)",
            "ck_risk_state_singleton": "INSERT INTO risk_state (id, trading_state, emergency_stop) VALUES (2, 'ACTIVE', false)",
        }
        for constraint, statement in bad_updates.items():
            with pytest.raises(IntegrityError, match=constraint):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
        await invariants_hold(engine)
        balance = (await ledger.balances())["USDT"]
        assert (balance.available, balance.reserved, balance.total) == (D("900"), D("100"), D("1000"))


async def test_initial_balances_seed_only_an_empty_account(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url) as (ledger, _):
        seeds = await asyncio.gather(*(ledger.ensure_initial_balances({"USDT": D("500")}) for _ in range(3)))
        assert sorted(seeds) == [False, False, True]
        assert await ledger.ensure_initial_balances({"USDT": D("9"), "BTC": D("1")}) is False
        assert list((await ledger.balances()).values()) == [await ledger.balance("USDT")]
        assert (await ledger.balance("USDT")).total == D("500")  # type: ignore[union-attr]
        with pytest.raises(LedgerError):
            await ledger.ensure_initial_balances({"USDT": D("-1")})


async def test_emergency_stop_survives_a_restart(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url) as (ledger, _):
        state = await ledger.risk_state()
        assert (state.trading_state, state.emergency_stop) == (TradingState.ACTIVE, False)
        message_id = uuid.uuid4()
        assert await ledger.set_emergency_stop(CONSUMER, message_id, True, "exchange outage", "alice") is True
        assert await ledger.set_emergency_stop(CONSUMER, message_id, True, "exchange outage", "alice") is False
        await ledger.set_trading_state(TradingState.REDUCING, "drawdown 12% > 10%")
        assert await ledger.record_peak_equity(D("1000.5")) == D("1000.5")
        assert await ledger.record_peak_equity(D("900")) == D("1000.5")
    # A new engine and Ledger: what a restarted risk manager sees.
    engine = create_engine(postgres_url)
    try:
        state = await Ledger(session_factory(engine)).risk_state()
        assert state.emergency_stop is True and state.emergency_reason == "exchange outage"
        assert state.changed_by == "risk_manager"  # the last change was set_trading_state's
        assert state.trading_state is TradingState.REDUCING
        assert state.trading_state_reason == "drawdown 12% > 10%"
        assert state.peak_equity == D("1000.5")
        ledger = Ledger(session_factory(engine))
        assert await ledger.set_emergency_stop(CONSUMER, uuid.uuid4(), False, "resolved", "bob") is True
        state = await ledger.risk_state()
        assert (state.emergency_stop, state.emergency_reason, state.changed_by) == (False, "resolved", "bob")
    finally:
        await engine.dispose()


async def test_migration_downgrades_and_upgrades_cleanly(postgres_url: str) -> None:
    await upgrade_head(postgres_url)
    await _alembic(postgres_url, "downgrade", "0001")
    assert await current_revision(postgres_url) == "0001"
    assert await _tables(postgres_url) == {"alembic_version", "processed_messages"}
    assert await upgrade_head(postgres_url) == head_revision()
    assert {"balances", "reservations", "positions", "fills", "risk_state", "risk_decisions"} <= await _tables(
        postgres_url
    )
    async with migrated_ledger(postgres_url, {"USDT": D("10")}) as (ledger, _):
        assert (await ledger.risk_state()).trading_state is TradingState.ACTIVE
        await reserve(ledger, new_reservation(Side.BUY, amount=D("10")))


async def _alembic(url: str, action: str, target: str) -> None:
    config = alembic_config(url)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:

            def run(sync_connection: object) -> None:
                config.attributes["connection"] = sync_connection
                getattr(command, action)(config, target)

            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


async def test_account_view_is_one_snapshot_even_while_a_settlement_commits(postgres_url: str) -> None:
    # The view's transaction started before the concurrent change; it must not see it halfway.
    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    try:
        ledger = Ledger(session_factory(engine))
        await ledger.ensure_initial_balances({"USDT": D("100")})
        async with session_factory(engine)() as reader:
            await reader.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            before = (await reader.execute(text("SELECT total FROM balances WHERE asset = 'USDT'"))).scalar_one()
            async with engine.begin() as writer:
                await writer.execute(text("UPDATE balances SET total = 150, available = 150 WHERE asset = 'USDT'"))
            again = (await reader.execute(text("SELECT total FROM balances WHERE asset = 'USDT'"))).scalar_one()
        assert before == again == D("100")
        view = await ledger.account_view()
        assert view.balances["USDT"].total == D("150") and view.risk_state.emergency_stop is False
    finally:
        await engine.dispose()


async def test_reading_the_risk_state_in_a_snapshot_survives_a_concurrent_peak_equity_update(postgres_url: str) -> None:
    # The metrics duty records peak equity while a signal's account view is open: reading the
    # state inside that REPEATABLE READ snapshot must not fail with a serialization error
    # (it did, the failed signal was retried behind later ones, and a SELL lost its BUY).
    from infra.db.ledger import risk as risk_ops

    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    try:
        ledger = Ledger(session_factory(engine))
        await ledger.risk_state()
        async with session_factory(engine)() as reader:
            await reader.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            await reader.execute(text("SELECT count(*) FROM balances"))  # the snapshot begins here
            assert await ledger.record_peak_equity(D("12345")) == D("12345")
            state = await risk_ops.read_state(reader)
        assert state.peak_equity is None  # as of the snapshot
        assert (await ledger.risk_state()).peak_equity == D("12345")
    finally:
        await engine.dispose()
