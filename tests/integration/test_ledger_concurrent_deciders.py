"""Several deciders on one ledger (real Postgres): no over-reservation of balances or positions.

Several risk-manager instances decide concurrently (issue 19); what keeps the account exact is
the ledger: the balance's atomic conditional update, and for a SELL the strategy's position under
its row lock. Approvals in flight at once in one process share a transaction (batching.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from infra.db.ledger import ApproveStatus, LedgerError
from protocol.enums import OrderStatus, RejectionReason, Side
from tests.support.ledger import (
    CONSUMER,
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
