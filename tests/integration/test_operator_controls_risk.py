"""Pause and resume of one strategy instance, applied by the risk manager on the real bus, ledger
and price store: BUYs rejected STRATEGY_PAUSED while SELLs pass, the pause survives a restart,
resume lifts it, and each control is recorded once however often it is delivered."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest
from click.testing import Result
from typer.testing import CliRunner

from agents.cli import app
from agents.ops.controls import ControlKind, build_control, publish_control
from protocol import OrderRequest, OrderStatus, PositionUpdate, RejectionReason, RiskRejection, Side
from protocol.messages.control import ControlMessage
from tests.integration.test_risk_manager_agent import Harness, fill_report, harness, signal  # noqa: F401 - fixture
from tests.support.controls import control_rows, wait_for_control
from tests.support.ledger import query

pytestmark = pytest.mark.integration


def _pause(strategy_id: str, paused: bool = True) -> ControlMessage:
    kind = ControlKind.PAUSE_STRATEGY if paused else ControlKind.RESUME_STRATEGY
    return build_control(kind, strategy_id=strategy_id, reason="news at 14:00", requested_by="alice", source="pytest")


async def test_pause_rejects_buys_passes_sells_survives_a_restart_and_resume_lifts_it(harness: Harness) -> None:
    await harness.start()
    bought = await harness.decide(signal(10))
    assert isinstance(bought, OrderRequest)
    await harness.bus.publish(fill_report(bought, OrderStatus.FILLED, bought.quantity, D(47000), D("0.5")))
    await harness.expect(PositionUpdate, lambda p: p.strategy_id == "s1" and p.quantity == bought.quantity)

    pause = _pause("s1")
    await publish_control(harness.bus, pause)
    await publish_control(harness.bus, pause)  # the same message again: a redelivery
    # The control queue is consumed in order: once a later control is recorded, so was the repeat.
    await wait_for_control(harness.postgres_url, (await publish_control(harness.bus, _pause("s9"))).message_id)
    [row] = await control_rows(harness.postgres_url, pause.message_id)
    assert tuple(row) == ("risk_manager", "PAUSE_STRATEGY", "s1", "alice", "news at 14:00", "APPLIED",
                          "strategy s1 paused: its BUY signals are rejected STRATEGY_PAUSED", None)

    paused_buy = await harness.decide(signal(12))
    assert isinstance(paused_buy, RiskRejection) and paused_buy.reason is RejectionReason.STRATEGY_PAUSED
    assert "alice" in paused_buy.detail and "news at 14:00" in paused_buy.detail
    other = await harness.decide(signal(12, strategy="s3"))
    assert isinstance(other, OrderRequest), "a pause holds one strategy instance, not the others"
    exit_ = await harness.decide(signal(13, "SELL"))
    assert isinstance(exit_, OrderRequest) and exit_.side is Side.SELL and exit_.quantity == bought.quantity

    await harness.stop()
    await harness.start()
    after_restart = await harness.decide(signal(14))
    assert isinstance(after_restart, RiskRejection) and after_restart.reason is RejectionReason.STRATEGY_PAUSED

    resume = await publish_control(harness.bus, _pause("s1", paused=False))
    [resumed] = await wait_for_control(harness.postgres_url, resume.message_id)
    assert (resumed.kind, resumed.outcome) == ("RESUME_STRATEGY", "APPLIED")
    approved = await harness.decide(signal(15))
    assert isinstance(approved, OrderRequest) and approved.side is Side.BUY

    by_reason = await query(harness.postgres_url, "SELECT reason, count(*) FROM risk_decisions "
                            "WHERE decision = 'REJECTED' GROUP BY reason")
    assert by_reason == [("STRATEGY_PAUSED", 2)]


async def test_an_older_pause_delivered_after_a_resume_does_not_pause_again(harness: Harness) -> None:
    await harness.start()
    pause, resume = _pause("s1"), _pause("s1", paused=False)  # built in this order: pause is older
    await publish_control(harness.bus, resume)
    await wait_for_control(harness.postgres_url, resume.message_id)
    await publish_control(harness.bus, pause)
    [late] = await wait_for_control(harness.postgres_url, pause.message_id)
    assert late.outcome == "REFUSED" and "newer" in late.detail
    assert isinstance(await harness.decide(signal(10)), OrderRequest)


async def test_the_control_command_sends_waits_for_the_record_and_lists_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("RABBITMQ_URL", harness.rabbitmq_url), ("BUS_EXCHANGE", harness.topology.exchange),
                        ("DATABASE_URL", harness.postgres_url)):
        monkeypatch.setenv(name, value)
    await harness.start()
    runner = CliRunner()

    def tradebus(*args: str) -> Result:
        return runner.invoke(app, list(args))

    paused = await asyncio.to_thread(tradebus, "control", "pause", "s1", "--reason", "drill", "--by", "ops", "-y")
    assert paused.exit_code == 0, paused.output
    assert "risk_manager: APPLIED PAUSE_STRATEGY s1 (by ops: drill)" in paused.output
    rejected = await harness.decide(signal(10))
    assert isinstance(rejected, RiskRejection) and rejected.reason is RejectionReason.STRATEGY_PAUSED

    # Nothing to close: sent, recorded REFUSED with the risk reason, exit 1.
    closed = await asyncio.to_thread(tradebus, "control", "close", "s1", "BTC/USDT", "--reason", "drill", "-y")
    assert closed.exit_code == 1, closed.output
    assert "risk_manager: REFUSED CLOSE_POSITION s1 * BTC/USDT" in closed.output and "NO_POSITION" in closed.output

    listed = await asyncio.to_thread(tradebus, "control", "list")
    assert listed.exit_code == 0, listed.output
    assert [line.split(": ", 1)[1].split(" ")[:2] for line in listed.output.splitlines()] == [
        ["REFUSED", "CLOSE_POSITION"], ["APPLIED", "PAUSE_STRATEGY"]]

    invalid = await asyncio.to_thread(tradebus, "control", "pause", "Not.A.Strategy", "--reason", "x", "-y")
    assert invalid.exit_code == 2 and "strategy_id" in invalid.output
