"""The ledger's fill key includes the symbol: Binance numbers trades per market, so trade 12345
on BTC/USDT and trade 12345 on ETH/USDT are two trades, each settling (and paying) its own fee.
A fee in the base asset is booked against the base asset (real Postgres)."""

from __future__ import annotations

import pytest

from protocol.enums import OrderStatus
from tests.support.ledger import CONSUMER, D, invariants_hold, migrated_ledger, new_reservation, report, reserve

pytestmark = pytest.mark.integration


async def test_the_same_trade_id_on_two_symbols_is_two_fills_with_two_fees(postgres_url: str) -> None:
    async with migrated_ledger(postgres_url, {"USDT": D("10000")}) as (ledger, engine):
        btc, eth = new_reservation(symbol="BTC/USDT"), new_reservation(symbol="ETH/USDT")
        await reserve(ledger, btc)
        await reserve(ledger, eth)
        # Both BUYs pay their fee in the base asset they bought, under the same trade id.
        await ledger.apply_report(CONSUMER, report(btc, OrderStatus.FILLED, "1", "1", "100", "100", "0.001", "BTC", "12345"))
        second = await ledger.apply_report(CONSUMER, report(eth, OrderStatus.FILLED, "1", "1", "100", "100", "0.002", "ETH", "12345"))
        assert second.fee == D("0.002") and second.fee_currency == "ETH"
        balances = await ledger.balances()
        assert (balances["BTC"].total, balances["ETH"].total) == (D("0.999"), D("0.998"))
        # The quote paid only the two costs; no fee was taken from USDT.
        assert balances["USDT"].total == D("9800")
        await invariants_hold(engine)
