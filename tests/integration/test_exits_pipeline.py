"""Protective exits on the risk manager and execution together (paper mode), on the real bus,
ledger and price store: a crafted candle whose low crosses the stop makes the risk manager SELL
the position; the exit's reason reaches the decision, the order and the fill, the paper exchange
fills at the stop price with slippage (not at the candle's close), and a restarted risk manager
that sees the candle again does not decide or order the exit twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest

from agents.ops.controls import ControlKind, build_control, publish_control
from agents.runtime import Agent
from infra.exchanges import load_market_snapshot, market_rules
from infra.exchanges.paper import PaperConfig
from infra.exchanges.paper.fills import market_fill_price
from infra.influx import InfluxPriceStore
from protocol import Candle, Side, SignalsDone
from protocol.exits import ExitSettings
from tests.integration.test_order_guard_pipeline import Pipeline, pipeline  # noqa: F401 - fixture
from tests.integration.test_risk_manager_agent import CANDLES, signal
from tests.support.bus import make_candle, wait_until
from tests.support.controls import wait_for_control

pytestmark = pytest.mark.integration

EXITS = ExitSettings(stop_loss=D("0.01"), take_profit=D("0.5"))


def crash(index: int) -> Candle:
    """Candle ``index`` (after the stored ones) opening above the stop and trading 3 % lower."""
    normal = make_candle(index)
    return normal.model_copy(update={"low": normal.open * D("0.97"), "close": normal.open * D("0.98")})


async def _stop(pipeline: Pipeline, agent: Agent) -> None:
    for entry in list(pipeline.running):
        if entry[0] is agent:
            agent.request_stop()
            await asyncio.wait_for(entry[1], 30)
            pipeline.running.remove(entry)


async def _position(pipeline: Pipeline) -> D:
    view = await pipeline.ledger.position("s1", "binance", "BTC/USDT")
    return D(0) if view is None else view.quantity


async def test_a_stop_loss_sells_once_with_its_reason_on_decision_order_and_fill(pipeline: Pipeline) -> None:
    # No strategy signal follows the crash candle: the candle queue decides its exit itself once
    # the decided signals have not advanced for RISK_EXIT_SIGNAL_WAIT (decision 0028).
    risk = await pipeline.start_risk_manager(RISK_EXIT_SIGNAL_WAIT="1")
    execution = await pipeline.start_execution()
    await pipeline.bus.publish(signal(10).model_copy(update={"exits": EXITS}))
    await pipeline.bus.publish(done(10))  # then the strategy agent goes quiet
    assert await wait_until(lambda: _position(pipeline), 20), "the BUY was not filled"
    held = await _position(pipeline)
    [(entry,)] = await pipeline.sql("SELECT average_entry_price FROM positions WHERE strategy_id = 's1'")
    stop = entry * (1 - EXITS.stop_loss)  # type: ignore[operator]

    # Execution away: the exit is decided and reserved, but not filled yet.
    await _stop(pipeline, execution)
    candle = crash(CANDLES)
    async with InfluxPriceStore(*pipeline.influx) as store:
        await store.write_candles([candle, crash(CANDLES + 1)])
    await pipeline.bus.publish(candle)

    async def exit_decided() -> list[tuple[str, str, str]]:
        return await pipeline.sql("SELECT decision, exit_reason, client_order_id FROM risk_decisions WHERE side = 'SELL'")

    assert await wait_until(exit_decided, 20), "no exit decision"
    [(decision, reason, client_order_id)] = await exit_decided()
    assert (decision, reason) == ("APPROVED", "STOP_LOSS")
    assert risk.exits.stalls == 1  # type: ignore[attr-defined]  # decided once the wait for the signals ran out

    # A restart sees the candle again, and the next one: the same exit, decided once.
    await _stop(pipeline, risk)
    risk = await pipeline.start_risk_manager()
    await pipeline.bus.publish(candle)
    await pipeline.bus.publish(crash(CANDLES + 1))
    assert await wait_until(lambda: risk.exits.checks >= 2, 20)  # type: ignore[attr-defined]
    assert len(await exit_decided()) == 1

    await pipeline.start_execution()

    async def filled() -> bool:
        rows = await pipeline.sql("SELECT status FROM orders WHERE client_order_id = :c", c=client_order_id)
        return rows == [("FILLED",)]

    assert await wait_until(filled, 20), "the exit SELL was not filled"
    assert await wait_until(lambda: _flat(pipeline), 20)
    [(side, quantity, order_reason)] = await pipeline.sql(
        "SELECT side, quantity, exit_reason FROM orders WHERE client_order_id = :c", c=client_order_id)
    assert (side, quantity, order_reason) == ("SELL", held, "STOP_LOSS")
    [(price, fill_reason)] = await pipeline.sql(
        "SELECT price, exit_reason FROM fills WHERE client_order_id = :c", c=client_order_id)
    rules = market_rules(load_market_snapshot("binance"), "BTC/USDT")
    # At the stop moved by the paper slippage, like the backtester; not at the candle's close.
    assert fill_reason == "STOP_LOSS"
    assert price == market_fill_price(Side.SELL, stop, PaperConfig().slippage_bps, rules.tick_size)
    assert candle.low <= stop <= candle.high and price != candle.close
    assert await pipeline.sql("SELECT count(*) FROM orders WHERE side = 'SELL'") == [(1,)]
    assert await pipeline.sql("SELECT count(*) FROM risk_decisions WHERE side = 'SELL'") == [(1,)]


async def _flat(pipeline: Pipeline) -> bool:
    return await _position(pipeline) == 0


async def test_a_signal_decides_the_exits_before_it_and_a_pause_does_not_block_them(pipeline: Pipeline) -> None:
    await pipeline.start_risk_manager()
    await pipeline.start_execution()
    await pipeline.bus.publish(signal(10).model_copy(update={"exits": EXITS}))
    assert await wait_until(lambda: _position(pipeline), 20), "the BUY was not filled"
    # The operator pauses the strategy: new BUYs stop, its exits must not.
    pause = build_control(ControlKind.PAUSE_STRATEGY, strategy_id="s1", reason="news", requested_by="alice", source="pytest")
    await publish_control(pipeline.bus, pause)
    await wait_for_control(pipeline.postgres_url, pause.message_id)

    # The crash candle is stored but its message never reaches the risk manager: the strategy's
    # own SELL for a later candle makes it check the held candles first, so the stop-loss inside
    # the crash candle is decided before that SELL, which then finds nothing left to sell.
    async with InfluxPriceStore(*pipeline.influx) as store:
        await store.write_candles([crash(CANDLES), make_candle(CANDLES + 1)])
    later = signal(CANDLES + 1, "SELL")
    await pipeline.bus.publish(later)

    async def sells() -> list[tuple[str, str | None, str | None, str | None]]:
        return await pipeline.sql(
            "SELECT decision, exit_reason, reason, client_order_id FROM risk_decisions WHERE side = 'SELL' ORDER BY id")

    assert await wait_until(lambda: _two(sells), 30), "the exit and the strategy's SELL were not both decided"
    [(first, first_exit, _, exit_order), (second, second_exit, second_reason, _)] = await sells()
    assert (first, first_exit) == ("APPROVED", "STOP_LOSS")
    assert (second, second_exit, second_reason) == ("REJECTED", None, "NO_POSITION")
    assert await wait_until(lambda: _flat(pipeline), 20)
    assert await pipeline.sql("SELECT exit_reason FROM orders WHERE client_order_id = :c", c=exit_order) == [("STOP_LOSS",)]


async def _two(query: Any) -> bool:
    return len(await query()) == 2


async def test_a_candles_exits_wait_for_the_strategy_signals_of_the_candle_before_it(pipeline: Pipeline) -> None:
    """Decision 0028: candle u reaches the risk manager's candle queue while the strategy's
    signal of candle u-1 is still in technical analysis and the strategy agent. The backtester
    decides that signal before u's exits; so does the bus: the exits of u wait for the strategy
    agent's SignalsDone of u-1, and here the strategy's SELL at u-1 closes the position, so the
    stop-loss inside u finds nothing left to sell."""
    risk = await pipeline.start_risk_manager(RISK_EXIT_SIGNAL_WAIT="30", RISK_SETTLE_WAIT="10")
    await pipeline.start_execution()
    await pipeline.bus.publish(signal(10).model_copy(update={"exits": EXITS}))
    await pipeline.bus.publish(done(10))
    assert await wait_until(lambda: _position(pipeline), 20), "the BUY was not filled"
    candle = crash(CANDLES)
    async with InfluxPriceStore(*pipeline.influx) as store:
        await store.write_candles([candle])
    checks = risk.exits.checks  # type: ignore[attr-defined]
    await pipeline.bus.publish(candle)  # u first: its exit would be decided now without the wait
    await asyncio.sleep(1.5)
    sells = "SELECT decision, exit_reason, reason FROM risk_decisions WHERE side = 'SELL' ORDER BY id"
    assert await pipeline.sql(sells) == [], "the exit of u was decided before the signals of u-1"
    await pipeline.bus.publish(signal(CANDLES - 1, "SELL"))  # then the signals of u-1
    await pipeline.bus.publish(done(CANDLES - 1))
    # The signal's walk and the candle queue's, right after the marker (not after the bound).
    assert await wait_until(lambda: risk.exits.checks >= checks + 2, 20)  # type: ignore[attr-defined]
    assert await pipeline.sql(sells) == [("APPROVED", None, None)]
    assert risk.exits.stalls == 0  # type: ignore[attr-defined]
    assert await wait_until(lambda: _flat(pipeline), 20)


def done(index: int) -> SignalsDone:
    """The strategy agent's marker after the signals of candle ``index``."""
    return SignalsDone(source="strategy", exchange="binance", symbol="BTC/USDT", timeframe="15m",
                       candle_time=make_candle(index).open_time, signals=1)
