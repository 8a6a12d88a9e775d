"""Settlement of execution reports on real Postgres: every number checked exactly, by hand.

Common setup: the account holds 10000 USDT; a BUY of 1 BTC reserves 101 USDT (reference 100
plus the risk manager's 1% fee/slippage buffer).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.db.ledger import Ledger, ReservationStatus, position_update
from protocol.enums import OrderStatus, RejectionReason, Side, TradingState
from tests.support.ledger import (
    CONSUMER,
    EXCHANGE,
    STRATEGY,
    SYMBOL,
    D,
    decision_for,
    invariants_hold,
    migrated_ledger,
    new_reservation,
    report,
    reserve,
)

pytestmark = pytest.mark.integration

FILLED, PARTIAL, REJECTED = OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.REJECTED


async def balance(ledger: Ledger, asset: str) -> tuple[Decimal, Decimal, Decimal]:
    view = (await ledger.balances())[asset]
    return view.total, view.available, view.reserved


async def position(ledger: Ledger) -> tuple[Decimal, Decimal | None, Decimal, Decimal]:
    view = await ledger.position(STRATEGY, EXCHANGE, SYMBOL)
    assert view is not None
    return view.quantity, view.average_entry_price, view.realised_pnl, view.fees_paid


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_filled_settles_cost_and_fee_and_releases_the_buffer(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        filled = report(order, FILLED, "1", "1", "100.5", "100.5", "0.1005", "USDT", "T1")
        outcome = await ledger.apply_report(CONSUMER, filled)
        # 101 reserved - 100.5 cost - 0.1005 fee = 0.3995 back to available.
        assert outcome.applied and outcome.released == D("0.3995")
        assert (outcome.filled_quantity, outcome.filled_quote, outcome.fee) == (D("1"), D("100.5"), D("0.1005"))
        assert outcome.position_changed
        assert await balance(ledger, "USDT") == (D("9899.3995"), D("9899.3995"), D("0"))
        assert await balance(ledger, "BTC") == (D("1"), D("1"), D("0"))
        assert await position(ledger) == (D("1"), D("100.5"), D("0"), D("0.1005"))
        view = outcome.reservation
        assert (view.status, view.remaining, view.filled_quantity, view.filled_quote) == (
            ReservationStatus.SETTLED, D("0"), D("1"), D("100.5"))
        assert view.last_report_status == "FILLED"
        # The very same message again, and the same fill under another message id (polling).
        assert (await ledger.apply_report(CONSUMER, filled)).applied is False
        again = await ledger.apply_report(CONSUMER, report(order, FILLED, "1", "1", "100.5", "100.5", "0.1005", "USDT", "T1"))
        assert again.applied and again.filled_quantity == 0 and again.fee == 0 and not again.position_changed
        assert await balance(ledger, "USDT") == (D("9899.3995"), D("9899.3995"), D("0"))
        assert await position(ledger) == (D("1"), D("100.5"), D("0"), D("0.1005"))
        assert await count(engine, "fills") == 1
        await invariants_hold(engine)

        # Sell it all at 110 (fee in quote): realised (110 - 100.5) * 1 = 9.5, fees 0.1005 + 0.11.
        sale = new_reservation(Side.SELL, amount=D("1"), quantity=D("1"))
        await reserve(ledger, sale)
        assert await balance(ledger, "BTC") == (D("1"), D("0"), D("1"))
        sold = await ledger.apply_report(CONSUMER, report(sale, FILLED, "1", "1", "110", "110", "0.11", "USDT", "T2"))
        assert sold.released == 0 and sold.reservation.status is ReservationStatus.SETTLED
        assert await balance(ledger, "BTC") == (D("0"), D("0"), D("0"))
        assert await balance(ledger, "USDT") == (D("10009.2895"), D("10009.2895"), D("0"))
        assert await position(ledger) == (D("0"), None, D("9.5"), D("0.2105"))
        # realised - fees equals the cash result: 10009.2895 - 10000.
        assert D("9.5") - D("0.2105") == D("9.2895")
        await invariants_hold(engine)


async def test_partial_then_filled(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        partial = await ledger.apply_report(CONSUMER, report(order, PARTIAL, "0.4", "0.4", "100", "100", "0.04", "USDT", "T1"))
        # 101 - 40 - 0.04 = 60.96 still reserved for the unfilled 0.6.
        assert partial.reservation.status is ReservationStatus.PARTIALLY_SETTLED
        assert partial.reservation.remaining == D("60.96") and partial.released == 0
        assert await balance(ledger, "USDT") == (D("9959.96"), D("9899"), D("60.96"))
        assert await balance(ledger, "BTC") == (D("0.4"), D("0.4"), D("0"))
        assert await position(ledger) == (D("0.4"), D("100"), D("0"), D("0.04"))
        await invariants_hold(engine)
        # Second fill 0.6 @ 101: average (40 + 60.6) / 1 = 100.6; 60.96 - 60.6 - 0.0606 = 0.2994 released.
        filled = await ledger.apply_report(CONSUMER, report(order, FILLED, "1", "0.6", "101", "100.6", "0.0606", "USDT", "T2"))
        assert filled.released == D("0.2994") and filled.reservation.status is ReservationStatus.SETTLED
        assert await balance(ledger, "USDT") == (D("9899.2994"), D("9899.2994"), D("0"))
        assert await balance(ledger, "BTC") == (D("1"), D("1"), D("0"))
        assert await position(ledger) == (D("1"), D("100.6"), D("0"), D("0.1006"))
        assert filled.reservation.filled_quote == D("100.6")
        await invariants_hold(engine)


async def test_filled_arriving_before_the_partial_ends_the_same(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        partial = report(order, PARTIAL, "0.4", "0.4", "100", "100", "0.04", "USDT", "T1")
        filled = report(order, FILLED, "1", "0.6", "101", "100.6", "0.0606", "USDT", "T2")
        first = await ledger.apply_report(CONSUMER, filled)
        # The increase is 1, not the announced 0.6: its value is 1 * 100.6 (average) - 0.
        assert (first.filled_quantity, first.filled_quote) == (D("1"), D("100.6"))
        assert first.released == D("101") - D("100.6") - D("0.0606") == D("0.3394")
        late = await ledger.apply_report(CONSUMER, partial)
        # Quantity already settled; only its own trade's fee is new, paid from available.
        assert (late.filled_quantity, late.fee, late.released) == (D("0"), D("0.04"), D("0"))
        assert late.reservation.status is ReservationStatus.SETTLED
        assert late.reservation.last_report_status == "FILLED"
        assert await balance(ledger, "USDT") == (D("9899.2994"), D("9899.2994"), D("0"))
        assert await balance(ledger, "BTC") == (D("1"), D("1"), D("0"))
        assert await position(ledger) == (D("1"), D("100.6"), D("0"), D("0.1006"))
        assert await count(engine, "fills") == 2
        await invariants_hold(engine)


async def test_partial_then_canceled_releases_the_rest(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        await ledger.apply_report(CONSUMER, report(order, PARTIAL, "0.4", "0.4", "100", "100", "0.04", "USDT", "T1"))
        canceled = await ledger.apply_report(CONSUMER, report(order, OrderStatus.CANCELED, "0.4", average="100"))
        assert canceled.released == D("60.96") and canceled.filled_quantity == 0
        assert canceled.reservation.status is ReservationStatus.SETTLED  # it did fill, partly
        assert await balance(ledger, "USDT") == (D("9959.96"), D("9959.96"), D("0"))
        assert await balance(ledger, "BTC") == (D("0.4"), D("0.4"), D("0"))
        assert await position(ledger) == (D("0.4"), D("100"), D("0"), D("0.04"))
        await invariants_hold(engine)


async def test_rejected_releases_everything_and_unknown_keeps_it(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        for status in (OrderStatus.NEW, OrderStatus.UNKNOWN):
            kept = await ledger.apply_report(CONSUMER, report(order, status))
            assert kept.reservation.status is ReservationStatus.HELD and kept.reservation.remaining == D("101")
            assert kept.reservation.last_report_status == status.value and kept.position is None
        assert await balance(ledger, "USDT") == (D("10000"), D("9899"), D("101"))
        rejected = await ledger.apply_report(CONSUMER, report(order, OrderStatus.REJECTED))
        assert rejected.released == D("101") and rejected.reservation.status is ReservationStatus.RELEASED
        assert await balance(ledger, "USDT") == (D("10000"), D("10000"), D("0"))
        assert await ledger.position(STRATEGY, EXCHANGE, SYMBOL) is None
        assert "BTC" not in await ledger.balances()
        await invariants_hold(engine)


async def test_slippage_beyond_the_buffer_comes_from_available_or_is_refused(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        # 101.5 + 0.1015 fee = 101.6015: 101 from the reservation, 0.6015 from available.
        outcome = await ledger.apply_report(CONSUMER, report(order, FILLED, "1", "1", "101.5", "101.5", "0.1015", "USDT", "T1"))
        assert outcome.released == 0
        assert await balance(ledger, "USDT") == (D("9898.3985"), D("9898.3985"), D("0"))
        await invariants_hold(engine)


async def test_a_charge_nothing_can_cover_is_booked_as_far_as_it_goes_and_halts_buys(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("101")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        too_dear = report(order, FILLED, "1", "1", "102", "102", "0", None, "T1")
        outcome = await ledger.apply_report(CONSUMER, too_dear)
        # The fill happened at the exchange: booked, the balance stops at zero, 1 USDT is short.
        assert outcome.applied and outcome.shortfalls == (("USDT", D("1")),)
        assert await balance(ledger, "USDT") == (D("0"), D("0"), D("0"))
        assert await balance(ledger, "BTC") == (D("1"), D("1"), D("0"))
        view = await ledger.reservation(order.client_order_id)
        assert view is not None and view.status is ReservationStatus.SETTLED and view.filled_quantity == 1
        state = await ledger.risk_state()
        assert state.trading_state is TradingState.REDUCING and "1 USDT" in (state.trading_state_reason or "")
        # A redelivery is a plain duplicate: nothing booked twice, no loop.
        again = await ledger.apply_report(CONSUMER, too_dear)
        assert not again.applied and await count(engine, "fills") == 1
        await invariants_hold(engine)


async def test_reports_of_unreserved_orders(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000")}) as (ledger, engine):
        # Execution refused a forged request (nothing filled): a no-op, trading goes on.
        refused = await ledger.apply_report(CONSUMER, report(new_reservation(), REJECTED))
        assert refused.applied and refused.reservation is None and refused.problem is None
        assert (await ledger.risk_state()).trading_state is TradingState.ACTIVE
        # One that did fill cannot be booked: recorded, BUYs halted, never a dead-letter loop.
        filled = report(new_reservation(), FILLED, "1", "1", "1", "1")
        outcome = await ledger.apply_report(CONSUMER, filled)
        assert outcome.applied and "unknown client_order_id" in (outcome.unbooked or "")
        assert (await ledger.risk_state()).trading_state is TradingState.REDUCING
        assert not (await ledger.apply_report(CONSUMER, filled)).applied
        assert await balance(ledger, "USDT") == (D("1000"), D("1000"), D("0"))
        assert await count(engine, "processed_messages") == 2
        await invariants_hold(engine)


async def test_fees_in_base_and_in_a_third_asset(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000"), "BNB": D("1")}) as (ledger, engine):
        order = new_reservation()
        await reserve(ledger, order)
        # Fee 0.001 BTC: the account receives 0.999 BTC; the fee is a disposal at 100 (PnL 0),
        # worth 0.1 USDT in fees_paid.
        await ledger.apply_report(CONSUMER, report(order, FILLED, "1", "1", "100", "100", "0.001", "BTC", "T1"))
        assert await balance(ledger, "BTC") == (D("0.999"), D("0.999"), D("0"))
        assert await balance(ledger, "USDT") == (D("9900"), D("9900"), D("0"))
        assert await position(ledger) == (D("0.999"), D("100"), D("0"), D("0.1"))
        # Fee in BNB: taken from the BNB balance; not in fees_paid (no BNB price to value it at).
        second = new_reservation()
        await reserve(ledger, second)
        await ledger.apply_report(CONSUMER, report(second, FILLED, "1", "1", "102", "102", "0.01", "BNB", "T2"))
        assert await balance(ledger, "BNB") == (D("0.99"), D("0.99"), D("0"))
        assert await balance(ledger, "USDT") == (D("9798"), D("9798"), D("0"))
        # Average entry (99.9 + 102) / 1.999.
        assert await position(ledger) == (D("1.999"), (D("99.9") + D("102")) / D("1.999"), D("0"), D("0.1"))
        # A fee in an asset the account does not hold: the fill is booked, the fee is short.
        third = new_reservation()
        await reserve(ledger, third)
        outcome = await ledger.apply_report(CONSUMER, report(third, FILLED, "1", "1", "100", "100", "0.01", "ETH", "T3"))
        assert outcome.shortfalls == (("ETH", D("0.01")),) and "ETH" not in await ledger.balances()
        assert await balance(ledger, "BTC") == (D("2.999"), D("2.999"), D("0"))
        assert (await ledger.risk_state()).trading_state is TradingState.REDUCING
        await invariants_hold(engine)


async def test_sell_beyond_the_position_is_refused(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("0"), "BTC": D("1")}) as (ledger, engine):
        sale = new_reservation(Side.SELL, amount=D("1"), quantity=D("1"))
        # The coins exist, but this strategy never bought them: the approval refuses it ...
        refused = await ledger.approve(CONSUMER, sale.signal_id, sale, decision_for(sale))
        assert refused.decision is not None and refused.decision.reason is RejectionReason.NO_POSITION
        assert await balance(ledger, "BTC") == (D("1"), D("1"), D("0"))  # nothing held
        # ... and a reservation that holds it anyway (a ledger from before that check) is not
        # settled either.
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO reservations (client_order_id, signal_id, strategy_id, exchange, symbol, side, asset, "
                "amount, remaining, quantity, status, expires_at) VALUES (:c, :s, :strategy, :e, :sym, 'SELL', 'BTC', "
                "1, 1, 1, 'HELD', now() + interval '5 minutes')"
            ), {"c": sale.client_order_id, "s": sale.signal_id, "strategy": sale.strategy_id, "e": sale.exchange,
                "sym": sale.symbol})
            await conn.execute(text("UPDATE balances SET available = 0, reserved = 1 WHERE asset = 'BTC'"))
        outcome = await ledger.apply_report(CONSUMER, report(sale, FILLED, "1", "1", "100", "100", "0.1", "USDT", "T1"))
        assert "position holds only 0" in (outcome.unbooked or "")
        assert await balance(ledger, "BTC") == (D("1"), D("0"), D("1"))  # nothing booked
        assert (await ledger.risk_state()).trading_state is TradingState.REDUCING
        await invariants_hold(engine)


async def test_position_update_message_from_a_settled_position(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, _):
        order = new_reservation()
        await reserve(ledger, order)
        filled = report(order, FILLED, "1", "1", "100", "100", "0.1", "USDT", "T1")
        outcome = await ledger.apply_report(CONSUMER, filled)
        assert outcome.position is not None
        update = position_update(outcome.position, source="risk_manager", parent=filled, mark_price=D("103"))
        assert update.causation_id == filled.message_id
        assert (update.quantity, update.average_entry_price, update.fees_paid) == (D("1"), D("100"), D("0.1"))
        assert update.unrealised_pnl == D("3")
        same = position_update(outcome.position, source="risk_manager", parent=filled, mark_price=D("103"))
        assert same.message_id == update.message_id


async def test_concurrent_copies_of_a_fill_settle_once(postgres_url: str) -> None:
    import asyncio

    async with migrated_ledger(postgres_url, {"USDT": D("10000"), "BTC": D("0")}, pool_size=12) as (ledger, engine):
        buy, other = new_reservation(), new_reservation()
        await reserve(ledger, buy)
        await reserve(ledger, other)
        # Ten copies of one fill (websocket + polling, distinct message ids) racing, next to
        # another order settling on the same balances.
        copies = [report(buy, FILLED, "1", "1", "100", "100", "0.1", "USDT", "T1") for _ in range(10)]
        others = [report(other, FILLED, "1", "1", "100", "100", "0.1", "USDT", "T2") for _ in range(2)]
        outcomes = await asyncio.gather(*(ledger.apply_report(CONSUMER, r) for r in copies + others))
        assert sum(o.filled_quantity for o in outcomes) == D("2")
        assert sum(o.fee for o in outcomes) == D("0.2")
        assert await balance(ledger, "USDT") == (D("9799.8"), D("9799.8"), D("0"))
        assert await balance(ledger, "BTC") == (D("2"), D("2"), D("0"))
        assert await position(ledger) == (D("2"), D("100"), D("0"), D("0.2"))
        await invariants_hold(engine)
