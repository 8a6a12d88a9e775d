"""Cancel as an operator control, applied by the execution agent (paper mode) on the real bus and
ledger: an open order is cancelled with its report, an unknown or finished order is recorded as
refused with the reason, and a redelivered cancel is recorded once."""

from __future__ import annotations

import pytest

from agents.ops.controls import ControlKind, build_control, publish_control
from protocol import OrderStatus
from protocol.messages.control import ControlMessage
from tests.integration.test_execution_agent import T1, Running, World, world  # noqa: F401 - fixture
from tests.support.controls import control_rows, wait_for_control
from tests.support.orders import make_order

pytestmark = pytest.mark.integration


def _cancel(client_order_id: str) -> ControlMessage:
    return build_control(ControlKind.CANCEL_ORDER, client_order_id=client_order_id, reason="fat finger",
                         requested_by="alice", source="pytest")


async def test_cancel_of_an_open_order_is_reported_and_recorded_once(world: World) -> None:
    resting = make_order(quantity="0.01", limit_price="46000", reference_time=T1)
    async with Running(world):
        await world.publish(resting)
        assert [r.status for r in await world.reports(1)] == [OrderStatus.NEW]
        cancel = _cancel(resting.client_order_id)
        await publish_control(world.bus, cancel)
        await publish_control(world.bus, cancel)  # the same message again: a redelivery
        [report] = await world.reports(1)
        # The control queue is consumed in order: once a later cancel is recorded, so was the repeat.
        unknown = _cancel("tb-nosuchorder")
        await publish_control(world.bus, unknown)
        [refused] = await wait_for_control(world.postgres_url, unknown.message_id)
        [applied] = await control_rows(world.postgres_url, cancel.message_id)
        finished = _cancel(resting.client_order_id)
        await publish_control(world.bus, finished)
        [final] = await wait_for_control(world.postgres_url, finished.message_id)
    assert (report.client_order_id, report.status) == (resting.client_order_id, OrderStatus.CANCELED)
    assert "fat finger" in (report.reason or "")
    assert tuple(applied) == ("execution", "CANCEL_ORDER", resting.client_order_id, "alice", "fat finger", "APPLIED",
                              f"order {resting.client_order_id} cancelled", resting.client_order_id)
    assert (refused.outcome, refused.detail) == ("REFUSED", "no order tb-nosuchorder is known to execution")
    assert (final.outcome, final.detail) == ("REFUSED", f"order {resting.client_order_id} is already final: CANCELED")
    assert await world.sql("SELECT status FROM paper_orders WHERE client_order_id = :c", c=resting.client_order_id) == [
        ("CANCELED",)]
