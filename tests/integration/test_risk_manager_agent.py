"""The risk manager agent in process on real RabbitMQ, Postgres and InfluxDB.

Each test gets its own bus exchange (the full system topology under a unique name), its own
migrated database and its own Influx database holding 40 real-shaped 15m candles. Signals use
the signal clock, so the reference price is the stored candle of the signal's own time.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import aio_pika
import pytest
from typer.testing import CliRunner

from agents.cli import app
from agents.risk_manager import RiskManagerAgent
from agents.risk_manager.settings import RiskSettings
from infra.bus import Bus, PublishTimeout, Topology, system_topology
from infra.db import create_engine, session_factory, upgrade_head
from infra.db.ledger import DecisionKind, Ledger, ReservationStatus
from infra.influx import InfluxPriceStore
from protocol import (
    CancelOrder,
    ExecutionReport,
    HealthState,
    Message,
    OrderRequest,
    OrderStatus,
    PositionUpdate,
    RejectionReason,
    RiskMetrics,
    RiskRejection,
    Signal,
    TradingState,
    decode_any,
)
from tests.support.bus import cleanup, make_candle, wait_until

pytestmark = pytest.mark.integration

D = Decimal
M = TypeVar("M", bound=Message)
CANDLES = 40
WATCHED = ("execution.orders", "execution.control", "monitor.events")
QUEUE_OF: dict[type[Message], str] = {
    OrderRequest: "execution.orders", CancelOrder: "execution.control", Signal: "none", ExecutionReport: "none",
}


def signal(
    index: int,
    side: str = "BUY",
    strategy: str = "s1",
    *,
    symbol: str = "BTC/USDT",
    confidence: float = 0.8,
    price: Decimal | None = None,
) -> Signal:
    candle = make_candle(index)
    return Signal(
        source="strategy", strategy_id=strategy, strategy="sma_cross", exchange="binance", symbol=symbol,
        timeframe="15m", side=side, confidence=confidence, reason="test", indicators={"sma_fast": D("1")},
        candle_time=candle.open_time, price=price if price is not None else candle.close,
    )


class Harness:
    """Runs agents in this process and watches the queues they publish to."""

    def __init__(self, rabbitmq_url: str, postgres_url: str, influx: tuple[str, str], topology: Topology) -> None:
        self.rabbitmq_url, self.postgres_url, self.influx, self.topology = rabbitmq_url, postgres_url, influx, topology
        self.inbox: list[Message] = []
        # Partitioned (decision 0025): orders go to execution.orders.p{k}; take them from the monitor's queue.
        self.watched = WATCHED if topology.partitions == 1 else tuple(q for q in WATCHED if q != "execution.orders")
        self.queue_of = QUEUE_OF if topology.partitions == 1 else {**QUEUE_OF, OrderRequest: "monitor.events"}
        self.agent: RiskManagerAgent | None = None
        self._task: asyncio.Task[None] | None = None

    def settings(self, **overrides: str) -> RiskSettings:
        values = {
            "RABBITMQ_URL": self.rabbitmq_url, "DATABASE_URL": self.postgres_url,
            "INFLUXDB_URL": self.influx[0], "INFLUXDB_DATABASE": self.influx[1],
            "BUS_EXCHANGE": self.topology.exchange, "EXCHANGE": "binance", "TIMEFRAME": "15m",
            "PAPER_BALANCES": "USDT:10000", "RISK_CLOCK": "signal", "HEARTBEAT_INTERVAL": "5",
            "RISK_METRICS_INTERVAL": "3600", "RISK_SWEEP_INTERVAL": "3600", "RISK_SETTLE_WAIT": "0",
            "BUS_PARTITIONS": str(self.topology.partitions),
            **overrides,
        }
        return RiskSettings(**values)  # type: ignore[arg-type]

    async def open(self) -> None:
        self.bus = Bus(self.rabbitmq_url, self.topology, connection_name="risk-test")
        await self.bus.connect()  # declares the topology before anything consumes it
        self._connection = await aio_pika.connect(self.rabbitmq_url)
        channel = await self._connection.channel()
        for suffix in self.watched:
            queue = await channel.get_queue(f"{self.topology.exchange}.{suffix}", ensure=True)
            await queue.consume(functools.partial(self._take, suffix))
        engine = create_engine(self.postgres_url)
        self._engine = engine
        self.ledger = Ledger(session_factory(engine))

    async def _take(self, suffix: str, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            decoded = decode_any(message.body)
            # The monitor queue also sees signals, orders and reports: take each kind from one queue.
            if self.queue_of.get(type(decoded), "monitor.events") == suffix:
                self.inbox.append(decoded)

    async def close(self) -> None:
        await self.stop()
        await self.bus.close()
        await self._connection.close()
        await self._engine.dispose()

    async def start(self, **overrides: str) -> RiskManagerAgent:
        agent = RiskManagerAgent(self.settings(**overrides), self.topology)
        self.agent, self._task = agent, asyncio.create_task(agent.run(install_signal_handlers=False))
        assert await wait_until(lambda: agent.health is not HealthState.STARTING or self._task.done(), 20)
        return agent

    async def stop(self) -> None:
        if self.agent is not None and self._task is not None:
            self.agent.request_stop()
            await asyncio.wait_for(self._task, 30)
        self.agent = self._task = None

    def received(self, kind: type[M], match: Callable[[M], bool] = lambda m: True) -> list[M]:
        return [m for m in self.inbox if isinstance(m, kind) and match(m)]

    async def expect(self, kind: type[M], match: Callable[[M], bool], timeout: float = 10) -> M:
        assert await wait_until(lambda: self.received(kind, match), timeout), f"no {kind.__name__} arrived"
        return self.received(kind, match)[0]

    async def decide(self, sig: Signal) -> OrderRequest | RiskRejection:
        """Publish a signal and wait for its order or rejection."""
        await self.bus.publish(sig)

        def answer() -> list[Message]:
            return [m for m in self.inbox if isinstance(m, OrderRequest | RiskRejection) and m.signal_id == sig.message_id]

        assert await wait_until(answer, 10), f"no answer to {sig.side.value} {sig.strategy_id} {sig.candle_time}"
        result = answer()[0]
        assert isinstance(result, OrderRequest | RiskRejection)
        return result


@pytest.fixture
async def harness(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    await upgrade_head(postgres_url)
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_candles([make_candle(i) for i in range(CANDLES)])
    # @pytest.mark.parametrize("harness", [N], indirect=True): N partitions per queue group.
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}", getattr(request, "param", 1))
    h = Harness(rabbitmq_url, postgres_url, influxdb_database, topology)
    await h.open()
    try:
        yield h
    finally:
        await h.close()
        await cleanup(rabbitmq_url, topology)


def fill_report(order: OrderRequest, status: OrderStatus, filled: Decimal, price: Decimal, fee: Decimal, n: int = 1) -> ExecutionReport:
    fields: dict[str, Any] = {}
    if filled > 0:
        fields = {"last_fill_quantity": filled, "last_fill_price": price, "average_price": price,
                  "fee": fee, "fee_currency": "USDT", "trade_id": f"t{n}"}
    return ExecutionReport.caused_by(
        order, id_parts=(str(n),), source="execution", client_order_id=order.client_order_id,
        strategy_id=order.strategy_id, exchange=order.exchange, symbol=order.symbol, side=order.side,
        order_type=order.order_type, status=status, quantity=order.quantity, cumulative_filled_quantity=filled,
        event_time=datetime.now(UTC), **fields,
    )


# --------------------------------------------------------------------------------- tests


async def test_approved_buy_fill_updates_position_balances_and_metrics(harness: Harness) -> None:
    await harness.start(RISK_METRICS_INTERVAL="0.2")
    order = await harness.decide(signal(10))
    assert isinstance(order, OrderRequest)
    candle = make_candle(10)
    assert order.reference_price == candle.close and order.reserved_asset == "USDT"
    assert order.quantity == D("0.02122")  # 10% of 10000 / (close x 1.002), down to the 0.00001 step
    balances = await harness.ledger.balances()
    assert balances["USDT"].reserved == order.reserved_amount

    fill_price, fee = candle.close + D("1.5"), D("0.75")
    await harness.bus.publish(fill_report(order, OrderStatus.FILLED, order.quantity, fill_price, fee))
    update = await harness.expect(PositionUpdate, lambda p: p.strategy_id == "s1")
    assert update.quantity == order.quantity and update.average_entry_price == fill_price

    balances = await harness.ledger.balances()
    assert balances["USDT"].total == D("10000") - order.quantity * fill_price - fee
    assert (balances["USDT"].reserved, balances["USDT"].available) == (D(0), balances["USDT"].total)
    assert balances["BTC"].total == order.quantity
    reservation = await harness.ledger.reservation(order.client_order_id)
    assert reservation is not None and reservation.status is ReservationStatus.SETTLED

    # Metrics mark the BTC at the newest stored close.
    mark = make_candle(CANDLES - 1).close
    equity = balances["USDT"].total + order.quantity * mark
    metrics = await harness.expect(RiskMetrics, lambda m: m.equity == equity)
    assert metrics.total_exposure == order.quantity * mark and metrics.open_positions == 1

    # A SELL sizes the whole position and reserves the base asset.
    sell = await harness.decide(signal(12, "SELL"))
    assert isinstance(sell, OrderRequest)
    assert (sell.quantity, sell.reserved_asset, sell.reserved_amount) == (order.quantity, "BTC", order.quantity)


async def test_stale_price_is_rejected_and_audited(harness: Harness) -> None:
    await harness.start()
    late = signal(CANDLES + 60)  # the store's newest candle is 15 hours older than this signal
    answer = await harness.decide(late)
    assert isinstance(answer, RiskRejection) and answer.reason is RejectionReason.STALE_PRICE
    audit = await harness.ledger.decision(late.message_id)
    assert audit is not None and audit.decision is DecisionKind.REJECTED
    assert audit.reason is RejectionReason.STALE_PRICE
    assert audit.inputs["snapshot"]["price_time"] == make_candle(CANDLES - 1).close_time.isoformat()
    assert float(audit.inputs["snapshot"]["price_age_seconds"]) > 120
    assert not harness.received(OrderRequest)


async def test_each_limit_rejects_with_its_reason_and_an_audit_row(harness: Harness) -> None:
    agent = await harness.start()
    base_limits = agent.limits
    first = await harness.decide(signal(10, strategy="s1"))  # leaves an open BUY of ~1000 USDT
    assert isinstance(first, OrderRequest)

    async def peak(value: str) -> None:
        await harness.ledger.record_peak_equity(D(value))

    async def state(value: TradingState) -> None:
        await harness.ledger.set_trading_state(value, "test")

    # (expected reason, limit changes, signal, preparation)
    table: list[tuple[RejectionReason, dict[str, Any], Signal, Any]] = [
        (RejectionReason.STALE_PRICE, {}, signal(CANDLES + 60, strategy="s2"), None),
        (RejectionReason.NO_PRICE, {}, signal(11, strategy="s2", symbol="ETH/USDT"), None),
        (RejectionReason.LOW_CONFIDENCE, {"min_confidence": 0.9}, signal(11, strategy="s2", confidence=0.5), None),
        (RejectionReason.MAX_OPEN_POSITIONS, {"max_open_positions": 1}, signal(11, strategy="s2"), None),
        (RejectionReason.SYMBOL_EXPOSURE_LIMIT, {"max_symbol_exposure": D("0.15")}, signal(11, strategy="s2"), None),
        (RejectionReason.TOTAL_EXPOSURE_LIMIT, {"max_total_exposure": D("0.15")}, signal(11, strategy="s2"), None),
        (RejectionReason.HOURLY_ORDER_LIMIT, {"max_orders_per_hour": 1}, signal(11, strategy="s1"), None),
        (RejectionReason.DAILY_ORDER_LIMIT, {"max_orders_per_day": 1}, signal(11, strategy="s1"), None),
        (RejectionReason.MIN_ORDER_INTERVAL, {"min_order_interval": timedelta(hours=1)}, signal(11, strategy="s1"), None),
        (RejectionReason.MAX_ORDER_NOTIONAL, {"max_order_notional": D("10")}, signal(11, strategy="s2"), None),
        (RejectionReason.PRICE_COLLAR, {}, signal(11, strategy="s2", price=make_candle(11).close * D("1.02")), None),
        (RejectionReason.DUPLICATE_SIGNAL, {}, signal(10, strategy="s1"), None),
        (RejectionReason.NO_POSITION, {}, signal(11, "SELL", strategy="s3"), None),
        (RejectionReason.DRAWDOWN_PAUSE, {}, signal(11, strategy="s2"), lambda: peak("20000")),
        (RejectionReason.REDUCING_ONLY, {}, signal(11, strategy="s2"), lambda: state(TradingState.REDUCING)),
        (RejectionReason.TRADING_HALTED, {}, signal(11, strategy="s2"), lambda: state(TradingState.HALTED)),
    ]
    for expected, changes, sig, prepare in table:
        agent.limits = replace(base_limits, **changes)
        if prepare is not None:
            await prepare()
        answer = await harness.decide(sig)
        assert isinstance(answer, RiskRejection), f"{expected.value}: approved instead"
        assert answer.reason is expected, f"{expected.value}: got {answer.reason.value} ({answer.detail})"
        audit = await harness.ledger.decision(sig.message_id)
        assert audit is not None and audit.decision is DecisionKind.REJECTED and audit.reason is expected
        assert audit.detail == answer.detail
        assert set(audit.inputs) >= {"signal", "snapshot", "limits", "sizing", "wall_time"}
    assert len(harness.received(OrderRequest)) == 1
    assert len(await harness.ledger.open_reservations()) == 1


async def test_same_signal_twice_reserves_once_and_orders_once(harness: Harness) -> None:
    agent = await harness.start()
    sig = signal(10)
    await harness.bus.publish(sig)
    await harness.bus.publish(sig)
    assert await wait_until(lambda: len(harness.received(OrderRequest)) == 2)
    first, second = harness.received(OrderRequest)
    assert first == second  # the identical message (same id, same produced_at): execution dedupes it
    reservations = await harness.ledger.open_reservations()
    assert [r.client_order_id for r in reservations] == [first.client_order_id]
    assert (await harness.ledger.balances())["USDT"].reserved == first.reserved_amount
    assert agent.counts["approved"] == 1 and agent.counts["replayed"] == 1


async def test_publish_lost_after_commit_is_republished_identically(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = await harness.start()
    real_publish, failures = agent.bus.publish, []

    async def flaky(message: Message, **kwargs: Any) -> None:
        if isinstance(message, OrderRequest) and not failures:
            failures.append(message)
            raise PublishTimeout("simulated lost confirm")
        await real_publish(message, **kwargs)

    monkeypatch.setattr(agent.bus, "publish", flaky)
    answer = await harness.decide(signal(10))
    assert isinstance(answer, OrderRequest) and failures and answer == failures[0]
    assert len(await harness.ledger.open_reservations()) == 1


async def test_emergency_stop_from_the_cli_rejects_and_survives_a_restart(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RABBITMQ_URL", harness.rabbitmq_url)
    monkeypatch.setenv("BUS_EXCHANGE", harness.topology.exchange)
    await harness.start()
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, ["emergency-stop", "on", "--reason", "drill", "--by", "ops", "-y"])
    assert result.exit_code == 0, result.output
    assert "ENGAGED" in result.output and "drill" in result.output
    assert await wait_until(lambda: _stop_engaged(harness), 10)

    answer = await harness.decide(signal(10))
    assert isinstance(answer, RiskRejection) and answer.reason is RejectionReason.EMERGENCY_STOP
    assert "drill" in answer.detail

    await harness.stop()
    await harness.start()
    again = await harness.decide(signal(11))
    assert isinstance(again, RiskRejection) and again.reason is RejectionReason.EMERGENCY_STOP

    result = await asyncio.to_thread(runner.invoke, app, ["emergency-stop", "off", "--reason", "drill over", "-y"])
    assert result.exit_code == 0, result.output
    assert await wait_until(lambda: _stop_released(harness), 10)
    assert isinstance(await harness.decide(signal(12)), OrderRequest)


async def _stop_engaged(h: Harness) -> bool:
    return (await h.ledger.risk_state()).emergency_stop


async def _stop_released(h: Harness) -> bool:
    return not (await h.ledger.risk_state()).emergency_stop


async def test_hold_is_audited_as_ignored_without_messages(harness: Harness) -> None:
    await harness.start()
    hold = signal(10, "HOLD")
    await harness.bus.publish(hold)

    async def audited() -> bool:
        return await harness.ledger.decision(hold.message_id) is not None

    assert await wait_until(audited, 10)
    audit = await harness.ledger.decision(hold.message_id)
    assert audit is not None and audit.decision is DecisionKind.IGNORED and audit.reason is None
    # Sentinel instead of a sleep: signals are decided in order, so once the next signal's answer
    # has arrived, anything the HOLD would have published has arrived before it.
    sentinel = signal(11)
    assert isinstance(await harness.decide(sentinel), OrderRequest)
    assert [m for m in harness.inbox if isinstance(m, OrderRequest | RiskRejection) and m.signal_id != sentinel.message_id] == []


async def test_expired_reservation_asks_execution_and_is_released_by_the_terminal_report(harness: Harness) -> None:
    await harness.start(RISK_ORDER_TTL="0.3", RISK_SWEEP_INTERVAL="0.1", RISK_RECONCILE_INTERVAL="60")
    order = await harness.decide(signal(10))
    assert isinstance(order, OrderRequest)
    cancel = await harness.expect(CancelOrder, lambda c: c.client_order_id == order.client_order_id)
    assert "expired" in cancel.reason
    reservation = await harness.ledger.reservation(order.client_order_id)
    assert reservation is not None and reservation.status is ReservationStatus.HELD  # not released blindly
    assert harness.agent is not None and "expired" in "; ".join(harness.agent.health_problems())

    await harness.bus.publish(fill_report(order, OrderStatus.REJECTED, D(0), D(0), D(0)))

    async def released() -> bool:
        r = await harness.ledger.reservation(order.client_order_id)
        return r is not None and r.status is ReservationStatus.RELEASED

    assert await wait_until(released, 10)
    usdt = (await harness.ledger.balances())["USDT"]
    assert (usdt.available, usdt.reserved) == (D("10000"), D(0))
    assert len(harness.received(CancelOrder, lambda c: c.client_order_id == order.client_order_id)) == 1


async def test_refuses_to_start_on_an_unmigrated_database(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topology = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    h = Harness(rabbitmq_url, postgres_url, influxdb_database, topology)
    agent = RiskManagerAgent(h.settings(), topology)
    try:
        await asyncio.wait_for(agent.run(install_signal_handlers=False), 30)
    finally:
        await cleanup(rabbitmq_url, topology)
    assert agent.exit_code != 0
    assert "tradebus migrate" in capsys.readouterr().err


async def test_a_sell_right_after_its_buy_waits_for_the_fill_instead_of_seeing_no_position(harness: Harness) -> None:
    # RISK_SETTLE_WAIT > 0: the SELL is decided only once the BUY's fill report is applied, so
    # the outcome does not depend on which of the two messages happens to arrive first.
    await harness.start(RISK_SETTLE_WAIT="10")
    buy = await harness.decide(signal(10))
    assert isinstance(buy, OrderRequest)
    sell = signal(11, "SELL")
    await harness.bus.publish(sell)
    # The agent says it is holding the SELL for the BUY's order (it decides one signal at a
    # time, and the BUY is decided): at that moment the SELL must still be unanswered.
    agent = harness.agent
    assert agent is not None
    assert await wait_until(lambda: agent.settling_on == (buy.client_order_id,), 10), "the SELL did not wait for the BUY"
    assert agent.heartbeat_detail()["awaiting_settlement"] == "1"
    assert not [m for m in harness.inbox if getattr(m, "signal_id", None) == sell.message_id]
    await harness.bus.publish(fill_report(buy, OrderStatus.FILLED, buy.quantity, buy.reference_price, D("0")))
    answer = await harness.expect(OrderRequest, lambda o: o.signal_id == sell.message_id)
    assert answer.side.value == "SELL" and answer.quantity == buy.quantity


async def test_a_signal_waits_only_for_open_orders_of_its_own_symbol(harness: Harness) -> None:
    # Decision 0026: settling is per symbol. An ETH signal is decided while a BTC order is still
    # open (no report at all); the BTC SELL after it still waits for its BUY's fill.
    async with InfluxPriceStore(*harness.influx) as store:
        await store.write_candles([make_candle(i, symbol="ETH/USDT") for i in range(CANDLES)])
    await harness.start(RISK_SETTLE_WAIT="600")
    buy = await harness.decide(signal(10))
    assert isinstance(buy, OrderRequest)
    other = await harness.decide(signal(11, symbol="ETH/USDT", strategy="s2"))
    assert isinstance(other, OrderRequest), other
    open_now = {r.client_order_id for r in await harness.ledger.open_reservations()}
    assert buy.client_order_id in open_now, "the BTC order was settled before the ETH decision: nothing shown"
    sell = signal(12, "SELL")
    await harness.bus.publish(sell)
    agent = harness.agent
    assert agent is not None
    assert await wait_until(lambda: agent.settling_on == (buy.client_order_id,), 10), "the SELL did not wait for the BUY"
    await harness.bus.publish(fill_report(buy, OrderStatus.FILLED, buy.quantity, buy.reference_price, D("0")))
    answer = await harness.expect(OrderRequest, lambda o: o.signal_id == sell.message_id)
    assert answer.side.value == "SELL" and answer.quantity == buy.quantity


async def test_one_of_two_instances_runs_the_duties_and_a_standby_takes_them_over(harness: Harness) -> None:
    """Decision 0031: two risk-manager instances on one ledger: one sweeps and publishes the
    metrics; when it stops, the other takes the duties at its next round."""
    first = await harness.start(RISK_METRICS_INTERVAL="0.2", RISK_SWEEP_INTERVAL="0.2")
    second = RiskManagerAgent(harness.settings(RISK_METRICS_INTERVAL="0.2", RISK_SWEEP_INTERVAL="0.2"), harness.topology)
    task = asyncio.create_task(second.run(install_signal_handlers=False))
    try:
        assert await wait_until(lambda: _holding(first) or _holding(second), 10)
        await asyncio.sleep(1.0)  # several rounds of both
        assert [_holding(first), _holding(second)].count(True) == 1
        holder = first if _holding(first) else second
        assert holder.heartbeat_detail()["runs_duties"] == "true"
        if holder is first:
            await harness.stop()
            standby = second
        else:
            second.request_stop()
            await asyncio.wait_for(task, 30)
            standby = first
        assert await wait_until(lambda: _holding(standby), 10), "the standby did not take the duties over"
        assert standby.heartbeat_detail()["runs_duties"] == "true"
    finally:
        if not task.done():
            second.request_stop()
            await asyncio.wait_for(task, 30)


def _holding(agent: RiskManagerAgent) -> bool:
    lease = getattr(agent, "lease", None)  # None until its setup has run
    return lease is not None and lease.holding


@pytest.mark.parametrize("harness", [4], indirect=True)
async def test_concurrent_buys_on_two_partitions_never_open_more_positions_than_the_limit(harness: Harness) -> None:
    # Decision 0029: BTC/USDT and ETH/USDT are on two partitions (3 and 1 of 4), decided
    # concurrently; each decision's snapshot may not show the other's BUY. With one position
    # allowed, exactly one BUY passes each round, whichever check catches the other (the rules
    # on the snapshot, or the ledger under the account lock), and the rejection is audited.
    async with InfluxPriceStore(*harness.influx) as store:
        await store.write_candles([make_candle(i, symbol="ETH/USDT") for i in range(CANDLES)])
    await harness.start(RISK_MAX_OPEN_POSITIONS="1")
    for n in range(1, 7):
        btc, eth = signal(10 + n, strategy="s1"), signal(10 + n, symbol="ETH/USDT", strategy="s2")
        answers = await asyncio.gather(harness.decide(btc), harness.decide(eth))
        orders = [a for a in answers if isinstance(a, OrderRequest)]
        refused = [a for a in answers if isinstance(a, RiskRejection)]
        assert len(orders) == 1 and len(refused) == 1, answers
        assert refused[0].reason is RejectionReason.MAX_OPEN_POSITIONS, refused[0]
        audited = await harness.ledger.decision(refused[0].signal_id)
        assert audited is not None and audited.reason is RejectionReason.MAX_OPEN_POSITIONS
        # The order is cancelled unfilled: the next round starts with no position open.
        await harness.bus.publish(fill_report(orders[0], OrderStatus.CANCELED, D("0"), orders[0].reference_price, D("0"), n))
        assert await wait_until(lambda: _none_open(harness), 10), "the cancelled order's reservation stayed open"


async def _none_open(harness: Harness) -> bool:
    return not await harness.ledger.open_reservations()
