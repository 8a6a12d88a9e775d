"""The five agents as separate OS processes replaying real BTC candles to the end.

Assertions are on end state: what the stores hold and the queues contain, compared with the
same strategies run in process, with an undisturbed run, and checked by the reality check.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from agents.monitor.reality_check import CheckOptions, run_checks
from infra.influx import InfluxPriceStore
from infra.settings import Settings
from protocol import OrderStatus
from tests.support.pipeline import expected_signals
from tests.support.system import EndState, QueueProbe, SystemRun
from tests.system.conftest import COUNT, replay_slice

pytestmark = pytest.mark.system

Chaos = Callable[[SystemRun], Awaitable[None]]


async def count(run: SystemRun, sql: str) -> int:
    async with run.engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def replay_to_end(run: SystemRun, probe: QueueProbe, chaos: Chaos | None = None) -> EndState:
    """Start the consumers, replay the slice, apply `chaos` meanwhile, wait until all settled."""
    await run.start_consumers(probe.consumers)
    run.start("data_collection")
    if chaos is not None:
        await chaos(run)
    await run.wait(lambda: not run.alive("data_collection"), timeout=300, what="the replay to end")
    assert run.processes["data_collection"].returncode == 0, run.log_tail("data_collection")
    await run.wait_settled(probe.depth)
    async with InfluxPriceStore(run.env["INFLUXDB_URL"], run.env["INFLUXDB_DATABASE"]) as store:
        candles = await store.candle_count("binance", "BTC/USDT", "15m")
    return await run.end_state(candles, await probe.dead_letters(run.topology))


def settings_of(run: SystemRun) -> Settings:
    return Settings(**run.env)  # type: ignore[arg-type]


def kill_when(agent: str, sql: str, at_least: int) -> Chaos:
    """SIGKILL `agent` once `sql` counts `at_least`, and restart it as a supervisor would."""

    async def chaos(run: SystemRun) -> None:
        await run.wait(lambda: _reached(run, sql, at_least), timeout=240, what=f"{sql} >= {at_least}")
        run.kill(agent, signal.SIGKILL)
        run.restart(agent)

    return chaos


async def _reached(run: SystemRun, sql: str, at_least: int) -> bool:
    return await count(run, sql) >= at_least


def assert_books_are_clean(state: EndState) -> None:
    approved = {sid for sid, d in state.decisions.items() if d[2] == "APPROVED"}
    assert approved, "the slice must trade, or this test proves nothing"
    assert len(state.orders) == len(approved) == state.order_rows
    assert all(OrderStatus(status).is_terminal for status, _, _ in state.orders.values()), state.orders
    assert set(state.reservations.values()) <= {"SETTLED", "RELEASED", "EXPIRED"}, state.reservations
    for asset, (total, available, reserved) in state.balances.items():
        assert available + reserved == total and reserved == 0, asset
    assert state.dead_letters == {}


async def test_a_replayed_slice_trades_to_a_clean_end_equal_to_the_in_process_strategies(
    make_system: Callable[..., Any], probe: QueueProbe
) -> None:
    run: SystemRun = await make_system()
    state = await replay_to_end(run, probe)

    assert state.candles == COUNT
    async with InfluxPriceStore(run.env["INFLUXDB_URL"], run.env["INFLUXDB_DATABASE"]) as store:
        snapshots = await store.query('SELECT count("close") FROM "indicators"')
    assert snapshots and snapshots[0]["count"] == COUNT

    expected = {str(s.message_id): (s.strategy_id, s.side.value) for s in expected_signals(replay_slice())}
    assert {sid: d[:2] for sid, d in state.decisions.items()} == expected
    assert_books_are_clean(state)
    assert await count(run, "SELECT count(*) FROM fills") == state.fills > 0

    report = await run_checks(settings_of(run), CheckOptions.from_settings(settings_of(run), replay_finished=True))
    assert report.exit_code == 0, [c for c in report.failed]


@pytest.mark.parametrize(
    ("agent", "sql", "at_least"),
    [
        ("execution", "SELECT count(*) FROM orders", 3),
        ("risk_manager", "SELECT count(*) FROM risk_decisions", 25),
    ],
)
async def test_an_agent_killed_mid_run_changes_nothing_in_the_end_state(
    make_system: Callable[..., Any], probe: QueueProbe, agent: str, sql: str, at_least: int
) -> None:
    undisturbed_run: SystemRun = await make_system()
    undisturbed = await replay_to_end(undisturbed_run, probe)
    disturbed_run: SystemRun = await make_system()
    disturbed = await replay_to_end(disturbed_run, probe, kill_when(agent, sql, at_least))

    assert disturbed_run.restarts == {agent: 1}
    assert_books_are_clean(disturbed)
    # Ids are derived from the candles, so the two runs are comparable row by row.
    assert set(disturbed.decisions) == set(undisturbed.decisions), "a signal was lost or invented"
    differences = disturbed.differences(undisturbed)
    warnings = {a: disturbed_run.warnings(a)[-15:] for a in ("risk_manager", "execution")}
    differing = set(differences.get("decisions", {}))
    audits = {"disturbed": await disturbed_run.audits(differing), "undisturbed": await undisturbed_run.audits(differing)}
    message = f"differences (disturbed, undisturbed): {differences}\nwarnings: {warnings}\naudits: {audits}"
    assert differences == {}, message


async def test_bad_input_is_dead_lettered_with_its_reason_and_trading_goes_on(
    make_system: Callable[..., Any], probe: QueueProbe, rabbitmq_url: str
) -> None:
    import aio_pika

    from protocol import topics

    run: SystemRun = await make_system()
    candle = replay_slice()[0].model_dump(mode="json", by_alias=True)
    nonsense = {**candle, "high": "1", "low": "99999"}  # a high below its low
    await run.start_consumers(probe.consumers)
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(run.exchange)
        for body, key in (
            (b'{"schema": "strategy.signal/1", "side": ', topics.signal("rsi-default", "BTC/USDT")),
            (json_bytes(nonsense), topics.candle("binance", "BTC/USDT", "15m")),
        ):
            await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key)
    state = await replay_to_end(run, probe)

    prefix = run.exchange
    assert state.dead_letters == {
        f"{prefix}.risk_manager.signals.dlq": 1,
        f"{prefix}.technical_analysis.candles.dlq": 1,
        f"{prefix}.execution.candles.dlq": 1,
    }
    report = await run_checks(settings_of(run), CheckOptions.from_settings(settings_of(run), replay_finished=True))
    reasons = {c.name: c.detail for c in report.checks if c.group == "dead letters" and c.figure == "1"}
    assert "JSON" in reasons[f"{prefix}.risk_manager.signals.dlq"] or "json" in reasons[f"{prefix}.risk_manager.signals.dlq"]
    assert "high" in reasons[f"{prefix}.technical_analysis.candles.dlq"]
    # Trading went on: every real signal was decided, and the books are clean.
    expected = {str(s.message_id): (s.strategy_id, s.side.value) for s in expected_signals(replay_slice())}
    got = {sid: d[:2] for sid, d in state.decisions.items()}
    assert got == expected
    assert_books_are_clean(state.__class__(**{**state.__dict__, "dead_letters": {}}))


def json_bytes(value: dict[str, Any]) -> bytes:
    import json

    return json.dumps(value).encode()
