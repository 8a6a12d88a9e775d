"""Closing a position and the emergency stop as operator controls, on the risk manager and
execution running together (paper mode) on the real bus, ledger and price store: a close is a
SELL decided by the risk manager and filled by the paper exchange, refused with its reason when
there is nothing to close or the stop is engaged; every control is recorded once per agent."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from agents.ops.controls import ControlKind, build_control, publish_control
from protocol.messages.control import ControlMessage
from tests.integration.test_order_guard_pipeline import Pipeline, pipeline  # noqa: F401 - fixture
from tests.integration.test_risk_manager_agent import signal
from tests.support.bus import wait_until
from tests.support.controls import control_rows, wait_for_control

pytestmark = pytest.mark.integration


def _control(kind: ControlKind, **target: str) -> ControlMessage:
    return build_control(kind, reason="flatten before the news", requested_by="alice", source="pytest", **target)


def _close() -> ControlMessage:
    return _control(ControlKind.CLOSE_POSITION, strategy_id="s1", symbol="BTC/USDT")


async def _position(pipeline: Pipeline) -> D:
    view = await pipeline.ledger.position("s1", "binance", "BTC/USDT")
    return D(0) if view is None else view.quantity


async def _bought(pipeline: Pipeline) -> D:
    await pipeline.start_risk_manager()
    await pipeline.start_execution()
    await pipeline.bus.publish(signal(10))
    assert await wait_until(lambda: _position(pipeline), 20), "the BUY of s1 was not filled"
    return await _position(pipeline)


async def test_close_sells_the_whole_position_through_the_risk_path_and_paper_fills_it(pipeline: Pipeline) -> None:
    held = await _bought(pipeline)
    close = _close()
    await publish_control(pipeline.bus, close)
    await publish_control(pipeline.bus, close)  # the same message again: a redelivery
    [row] = await wait_for_control(pipeline.postgres_url, close.message_id)
    assert (row.agent, row.kind, row.target, row.requested_by, row.outcome) == (
        "risk_manager", "CLOSE_POSITION", "s1 * BTC/USDT", "alice", "APPLIED")
    assert "operator close by alice: flatten before the news" in row.detail and row.client_order_id

    async def filled() -> bool:
        return await pipeline.sql("SELECT status FROM orders WHERE client_order_id = :c", c=row.client_order_id) == [("FILLED",)]

    assert await wait_until(filled, 20), f"the close's order {row.client_order_id} was not filled"
    assert await wait_until(lambda: _is_flat(pipeline), 20), "the fill did not flatten the position"
    [(side, quantity)] = await pipeline.sql("SELECT side, quantity FROM orders WHERE client_order_id = :c", c=row.client_order_id)
    assert (side, quantity) == ("SELL", held)
    [(strategy, detail)] = await pipeline.sql(
        "SELECT strategy_id, detail FROM risk_decisions WHERE client_order_id = :c", c=row.client_order_id)
    assert strategy == "s1" and detail.startswith("operator close by alice: flatten before the news: approved SELL")

    # Nothing left to close: refused with the risk manager's reason. Its record also proves the
    # repeated close above was handled (one queue, in order) without a second row or order.
    again = _close()
    await publish_control(pipeline.bus, again)
    [refused] = await wait_for_control(pipeline.postgres_url, again.message_id)
    assert refused.outcome == "REFUSED" and refused.detail.startswith("NO_POSITION:") and refused.client_order_id is None
    assert len(await control_rows(pipeline.postgres_url, close.message_id)) == 1
    assert await pipeline.sql("SELECT count(*) FROM orders WHERE side = 'SELL'") == [(1,)]


async def _is_flat(pipeline: Pipeline) -> bool:
    return await _position(pipeline) == 0


async def test_the_stop_is_recorded_by_both_agents_and_a_close_under_it_is_refused(pipeline: Pipeline) -> None:
    held = await _bought(pipeline)
    stop = _control(ControlKind.ENGAGE_STOP)
    await publish_control(pipeline.bus, stop)
    rows = await wait_for_control(pipeline.postgres_url, stop.message_id, agents=2)
    assert [(r.agent, r.kind, r.outcome) for r in rows] == [
        ("execution", "ENGAGE_STOP", "APPLIED"), ("risk_manager", "ENGAGE_STOP", "APPLIED")]

    close = _close()
    await publish_control(pipeline.bus, close)
    [refused] = await wait_for_control(pipeline.postgres_url, close.message_id)
    assert refused.outcome == "REFUSED" and refused.detail.startswith("EMERGENCY_STOP:")
    assert await _position(pipeline) == held

    release = _control(ControlKind.RELEASE_STOP)
    await publish_control(pipeline.bus, release)
    await wait_for_control(pipeline.postgres_url, release.message_id, agents=2)
    after = _close()
    await publish_control(pipeline.bus, after)
    [applied] = await wait_for_control(pipeline.postgres_url, after.message_id)
    assert applied.outcome == "APPLIED"
    assert await wait_until(lambda: _is_flat(pipeline), 20), "the close after the release did not flatten the position"
