"""Several deciders on one ledger (real Postgres): no over-reservation of balances or positions,
and no account-wide limit passed.

Several risk-manager instances decide concurrently (issue 19); what keeps the account exact is
the ledger: the balance's atomic conditional update, for a SELL the strategy's position under
its row lock, and for a BUY the account-wide limits re-checked under the account lock (decision
0029). Approvals in flight at once in one process share a transaction (batching.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agents.risk_manager.account_check import AccountLimits, account_check
from agents.risk_manager.rules import Approved, RiskLimits, decide
from agents.risk_manager.sizing import SizingConfig
from agents.risk_manager.snapshot import risk_snapshot, value_account
from infra.db.ledger import (
    ApproveOutcome,
    ApproveStatus,
    DecisionKind,
    Ledger,
    LedgerError,
    NewReservation,
    ReservationStatus,
)
from infra.exchanges import load_market_snapshot, market_rules
from protocol import Signal
from protocol.enums import OrderStatus, RejectionReason, Side
from tests.support.ledger import (
    CONSUMER,
    EXCHANGE,
    STRATEGY,
    D,
    decision_for,
    invariants_hold,
    migrated_ledger,
    new_reservation,
    report,
    reserve,
)

pytestmark = pytest.mark.integration


async def test_concurrent_sells_never_sell_more_than_the_strategys_position(postgres_url: str) -> None:
    # The account holds 5 BTC, but this strategy bought only 1: the base balance alone would let
    # concurrent SELLs of the same strategy sell the other 4 too.
    async with migrated_ledger(postgres_url, {"USDT": D("1000"), "BTC": D("4")}, pool_size=10) as (ledger, engine):
        bought = new_reservation(Side.BUY, amount=D("101"), quantity=D("1"))
        await reserve(ledger, bought)
        await ledger.apply_report(CONSUMER, report(bought, OrderStatus.FILLED, "1", "1", "100", "100", "0", None, "T1"))
        sells = [new_reservation(Side.SELL, amount=D("0.3"), quantity=D("0.3")) for _ in range(20)]
        start = asyncio.Barrier(len(sells))

        async def sell(index: int) -> ApproveStatus:
            await start.wait()
            item = sells[index]
            outcome = await ledger.approve(CONSUMER, item.signal_id, item, decision_for(item))
            if outcome.status is ApproveStatus.INSUFFICIENT_BALANCE:
                assert outcome.decision is not None and outcome.decision.reason is RejectionReason.NO_POSITION
            return outcome.status

        outcomes = await asyncio.gather(*(sell(i) for i in range(len(sells))))
        assert outcomes.count(ApproveStatus.RESERVED) == 3  # 3 x 0.3 <= 1 < 4 x 0.3
        btc = (await ledger.balances())["BTC"]
        assert (btc.total, btc.reserved, btc.available) == (D("5"), D("0.9"), D("4.1"))
        await invariants_hold(engine)


async def test_two_deciding_processes_on_two_symbols_never_over_reserve_the_shared_balance(postgres_url: str) -> None:
    # Two ledgers on two engines: two risk-manager processes, each with its own batcher.
    async with (
        migrated_ledger(postgres_url, {"USDT": D("1000")}, pool_size=10) as (first, engine),
        migrated_ledger(postgres_url, pool_size=10) as (second, _),
    ):
        btc = [new_reservation(amount=D("7.01")) for _ in range(100)]
        eth = [new_reservation(amount=D("7.01"), symbol="ETH/USDT") for _ in range(100)]
        start = asyncio.Barrier(200)

        async def approve(ledger: object, item: object) -> ApproveStatus:
            await start.wait()
            outcome = await ledger.approve(CONSUMER, item.signal_id, item, decision_for(item))  # type: ignore[attr-defined]
            return outcome.status  # type: ignore[no-any-return]

        outcomes = await asyncio.gather(*(approve(first, i) for i in btc), *(approve(second, i) for i in eth))
        assert outcomes.count(ApproveStatus.RESERVED) == 142  # floor(1000 / 7.01), over both symbols
        usdt = (await first.balances())["USDT"]
        assert usdt.reserved == D("7.01") * 142 and usdt.available == D("4.58")
        await invariants_hold(engine)


async def test_a_refused_approval_in_a_shared_transaction_undoes_none_of_the_others(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("1000")}, pool_size=10) as (ledger, engine):
        taken = new_reservation(amount=D("10"))
        await reserve(ledger, taken)
        good = [new_reservation(amount=D("10")) for _ in range(8)]
        # Refused by the ledger (LedgerError): a client order id that another message holds already,
        # and a non-positive amount. In flight together with the good ones.
        clash = replace(new_reservation(amount=D("10")), client_order_id=taken.client_order_id)
        empty = new_reservation(amount=D("0"))
        items = [*good[:4], clash, *good[4:6], empty, *good[6:]]
        results = await asyncio.gather(
            *(ledger.approve(CONSUMER, i.signal_id, i, decision_for(i)) for i in items), return_exceptions=True
        )
        refused = [item for item, result in zip(items, results, strict=True) if isinstance(result, LedgerError)]
        assert refused == [clash, empty]
        assert all(result.status is ApproveStatus.RESERVED for result in results if not isinstance(result, Exception))
        usdt = (await ledger.balances())["USDT"]
        assert usdt.reserved == D("90")  # the first one and the eight good ones, nothing of the refused
        # The refused ones left no claim behind: their messages can be retried.
        for item in (clash, empty):
            assert await ledger.decision(item.signal_id) is None
        await invariants_hold(engine)


# --- account-wide limits (decision 0029) --------------------------------------------------------
# Each "process" decides as the risk manager does: the account view read, the snapshot built and
# the rules asked by the agent's own functions, then the approval with the agent's account check.
MARKETS = load_market_snapshot("binance")
# ETH/USDC: a second quote asset, so the two BUYs share no balance row (whose lock would
# otherwise serialise them): only the account lock stands between them.
RULES = {"BTC/USDT": market_rules(MARKETS, "BTC/USDT"), "ETH/USDT": market_rules(MARKETS, "ETH/USDT"),
         "ETH/USDC": replace(market_rules(MARKETS, "ETH/USDT"), symbol="ETH/USDC")}
MARKS = {"BTC": D("43000"), "ETH": D("3000"), "USDT": D("1"), "USDC": D("1")}
SIZING = SizingConfig(fraction=D("0.1"))


def buy_signal(symbol: str) -> Signal:
    return Signal(
        source="strategy", strategy_id=STRATEGY, strategy="sma_cross", exchange=EXCHANGE, symbol=symbol,
        timeframe="15m", side="BUY", confidence=0.9, reason="test", indicators={"sma_fast": D("1")},
        candle_time=datetime.now(UTC) - timedelta(minutes=15), price=MARKS[symbol.split("/")[0]],
    )


async def decided(ledger: Ledger, sig: Signal, limits: RiskLimits) -> tuple[NewReservation, AccountLimits | None]:
    """The BUY the rules approve on the account as read now, and its account check."""
    view = await ledger.account_view()
    now = datetime.now(UTC)
    marks = dict(MARKS)
    value = value_account(view.balances, view.positions, view.open_reservations, marks,
                          strategy_id=sig.strategy_id, exchange=sig.exchange, symbol=sig.symbol)
    snap = risk_snapshot(value, view.balances, symbol=sig.symbol, now=now, reference_price=sig.price,
                         price_time=now, peak_equity=None, order_times=())
    outcome, sized = decide(sig, snap, limits, SIZING, RULES[sig.symbol])
    assert isinstance(outcome, Approved) and sized is not None, outcome
    item = new_reservation(amount=sized.reserved_amount, quantity=sized.quantity, signal_id=sig.message_id,
                           symbol=sig.symbol)
    return item, account_check(sig, snap, limits, sized, marks)


async def race_two_buys(
    url: str, limits: RiskLimits, reason: RejectionReason, symbols: tuple[str, str] = ("BTC/USDT", "ETH/USDT"),
    rounds: int = 8, one_process: bool = False,
) -> None:
    """Two processes (two engines, two batchers) each decide a BUY on its own symbol on a
    snapshot without the other's, then approve at once: exactly one may pass, every round.
    ``one_process``: both through one ledger, so both go in one shared transaction."""
    async with (
        migrated_ledger(url, {"USDT": D("10000"), "USDC": D("10000")}, pool_size=4) as (first, engine),
        migrated_ledger(url, pool_size=4) as (other, _),
    ):
        second = first if one_process else other
        for _ in range(rounds):
            start = asyncio.Barrier(2)

            async def one(ledger: Ledger, symbol: str) -> tuple[NewReservation, ApproveOutcome]:
                item, check = await decided(ledger, buy_signal(symbol), limits)
                await start.wait()  # both decided on a book without the other's BUY
                return item, await ledger.approve(CONSUMER, item.signal_id, item, decision_for(item), check)

            results = await asyncio.gather(one(first, symbols[0]), one(second, symbols[1]))
            statuses = sorted(outcome.status for _, outcome in results)
            assert statuses == [ApproveStatus.REFUSED, ApproveStatus.RESERVED], statuses
            (won, _), (lost, refused) = sorted(results, key=lambda r: r[1].status is ApproveStatus.REFUSED)
            audited = await first.decision(lost.signal_id)
            assert audited is not None and refused.decision == audited
            assert audited.decision is DecisionKind.REJECTED and audited.reason is reason
            assert audited.inputs["ledger"]["account_check"]["open_positions"] == 1  # the winner's open BUY
            # The refused BUY holds nothing; the next round starts from an empty book again.
            assert await first.reservation(lost.client_order_id) is None
            assert await first.release(won.client_order_id, ReservationStatus.RELEASED)
            await invariants_hold(engine)


async def test_two_processes_never_open_more_positions_than_the_limit(postgres_url: str) -> None:
    await race_two_buys(postgres_url, RiskLimits(max_open_positions=1), RejectionReason.MAX_OPEN_POSITIONS)


async def test_two_processes_never_exceed_the_total_exposure_limit(postgres_url: str) -> None:
    # Each BUY is ~0.05 of equity (0.1 of its quote balance, half the account): one fits, two do not.
    await race_two_buys(postgres_url, RiskLimits(max_total_exposure=D("0.08")), RejectionReason.TOTAL_EXPOSURE_LIMIT)


async def test_two_processes_buying_with_two_quote_assets_never_open_more_positions(postgres_url: str) -> None:
    await race_two_buys(postgres_url, RiskLimits(max_open_positions=1), RejectionReason.MAX_OPEN_POSITIONS,
                        symbols=("BTC/USDT", "ETH/USDC"))


async def test_one_process_never_opens_more_positions_in_one_shared_transaction(postgres_url: str) -> None:
    # Both approvals in one batch (batching.py): the book read once under the lock must count
    # the BUY reserved just before in the same transaction.
    await race_two_buys(postgres_url, RiskLimits(max_open_positions=1), RejectionReason.MAX_OPEN_POSITIONS,
                        one_process=True)


async def test_a_buy_filled_since_the_snapshot_counts_as_a_position(postgres_url: str) -> None:
    # The other symbol's BUY is approved AND filled between this decision's read and its approval:
    # it is no longer a reservation but a position, in an asset the decision has no mark for.
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        limits = RiskLimits(max_open_positions=1)
        eth, check = await decided(ledger, buy_signal("ETH/USDT"), limits)
        assert check is not None
        btc, _ = await decided(ledger, buy_signal("BTC/USDT"), limits)
        await reserve(ledger, btc)
        await ledger.apply_report(CONSUMER, report(btc, OrderStatus.FILLED, str(btc.quantity), str(btc.quantity),
                                                   "43000", "43000", "0", None, "T1"))
        check = replace(check, marks={"ETH": MARKS["ETH"], "USDT": D("1")})  # no BTC mark at the decision
        outcome = await ledger.approve(CONSUMER, eth.signal_id, eth, decision_for(eth), check)
        assert outcome.status is ApproveStatus.REFUSED
        assert outcome.decision is not None and outcome.decision.reason is RejectionReason.MAX_OPEN_POSITIONS
        assert outcome.decision.inputs["ledger"]["account_check"]["valued_at_cost"] == ["BTC"]
        await invariants_hold(engine)
