"""The strategy agent in process on the real broker and InfluxDB: snapshots in, signals out,
equal to running the same strategies in process; restarts, duplicates and gaps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.data_collection.replay import load_and_clean
from agents.strategy.agent import StrategyAgent
from agents.strategy.config import load_strategy_config
from agents.strategy.history import IndicatorHistory
from agents.strategy.settings import StrategySettings
from agents.strategy.signals import build_signal
from agents.strategy.strategies import on_change, run_strategy
from infra.bus import Bus, Topology, system_topology
from infra.influx import InfluxPriceStore
from protocol import Candle, IndicatorSnapshot, Signal
from tests.support.bus import cleanup, drain_signals, wait_until
from tests.support.pipeline import snapshots_of

pytestmark = pytest.mark.integration

N = 240


@pytest.fixture(scope="module")
def snapshots() -> list[IndicatorSnapshot]:
    """Snapshots of N real BTC candles, made the way the analysis agent makes them."""
    candles: list[Candle] = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m").candles[2000 : 2000 + N]
    return snapshots_of(candles)


def expected_signals(snapshots: list[IndicatorSnapshot]) -> list[Signal]:
    """What the agent must publish: on_change(run_strategy(...)) for every configured instance."""
    history = IndicatorHistory.from_snapshots(snapshots)
    out = []
    for config in load_strategy_config():
        for i, decision in on_change(run_strategy(config.build(), history)):
            out.append(build_signal(snapshots[i], strategy_id=config.strategy_id, kind=config.kind, decision=decision))
    return out


def key(signal: Signal) -> tuple[Any, ...]:
    return (signal.candle_time, signal.strategy_id)


def same(received: list[Signal], expected: list[Signal]) -> None:
    got = sorted(received, key=key)
    want = sorted(expected, key=key)
    assert [key(s) for s in got] == [key(s) for s in want]
    for a, b in zip(got, want, strict=True):
        assert a.model_dump(exclude={"produced_at"}) == b.model_dump(exclude={"produced_at"}), a.strategy_id


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    yield topo
    await cleanup(rabbitmq_url, topo)


def settings_for(rabbitmq_url: str, influx: tuple[str, str], topology: Topology, **extra: Any) -> StrategySettings:
    return StrategySettings(
        RABBITMQ_URL=rabbitmq_url, INFLUXDB_URL=influx[0], INFLUXDB_DATABASE=influx[1],
        BUS_EXCHANGE=topology.exchange, HEARTBEAT_INTERVAL=0.5, **extra,
    )


class Running:
    """One in-process agent run."""

    def __init__(self, settings: StrategySettings) -> None:
        self.agent = StrategyAgent(settings)
        self.task = asyncio.create_task(self.agent.run(install_signal_handlers=False))

    def handled(self) -> int:
        return sum(v for k, v in self.agent.counts.items() if k != "gap_filled") if hasattr(self.agent, "counts") else 0

    async def stop(self) -> None:
        self.agent.request_stop()
        await asyncio.wait_for(self.task, 30)


async def publish(bus: Bus, snapshots: list[IndicatorSnapshot]) -> None:
    for snapshot in snapshots:
        await bus.publish(snapshot)


def signals_queue(topology: Topology) -> str:
    return f"{topology.exchange}.risk_manager.signals"


async def test_signals_equal_the_in_process_run_across_a_restart_and_a_duplicate(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, snapshots: list[IndicatorSnapshot]
) -> None:
    expected = expected_signals(snapshots)
    assert {s.side.value for s in expected} == {"BUY", "SELL", "HOLD"}
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_indicators(snapshots)  # the analysis agent stores before it publishes
    settings = settings_for(rabbitmq_url, influxdb_database, topology)
    half = N // 2
    async with Bus(rabbitmq_url, topology, connection_name="strategy-test") as bus:
        run = Running(settings)
        await publish(bus, snapshots[:half])
        assert await wait_until(lambda: run.handled() == half, timeout=30), run.agent.counts
        await run.stop()
        assert run.agent.exit_code == 0
        first, markers = await drain_signals(rabbitmq_url, signals_queue(topology), len(expected), timeout=3)
        assert len(markers) == half  # one SignalsDone per handled snapshot, after its signals
        cut = snapshots[half].candle_time
        same(first, [s for s in expected if s.candle_time < cut])

        # A new process: warmed from InfluxDB, it neither repeats nor loses a signal. The last
        # snapshot before the restart arrives again first (its ack was lost, say), and a later
        # one is redelivered once more at the end.
        changed_at = {s.candle_time for s in expected}
        twice = next(i for i in range(half + 1, N) if snapshots[i].candle_time in changed_at)
        run = Running(settings)
        await publish(bus, [*snapshots[half - 1 :], snapshots[twice]])
        assert await wait_until(lambda: run.handled() == N - half + 2, timeout=30), run.agent.counts
        await run.stop()
    # The history was warmed up to the first snapshot received, which then joined it as new.
    assert run.agent.counts["new"] == N - half + 1 and run.agent.counts["duplicate"] == 1
    second, markers = await drain_signals(rabbitmq_url, signals_queue(topology), len(expected), timeout=3)
    assert len(markers) == N - half + 2  # the re-handled snapshots' markers too
    again = [s for s in expected if s.candle_time in (snapshots[half - 1].candle_time, snapshots[twice].candle_time)]
    assert any(s.candle_time == snapshots[twice].candle_time for s in again)
    # A re-handled snapshot yields the very signals already decided for it (same ids) and
    # nothing else is repeated.
    same(second, again + [s for s in expected if s.candle_time >= cut])
    assert {s.message_id for s in again if s.candle_time < cut} <= {s.message_id for s in first}
    detail = run.agent.heartbeat_detail()
    for strategy_id in {s.strategy_id for s in expected}:
        mine = [s.side.value for s in second if s.strategy_id == strategy_id]
        assert detail[f"signals.{strategy_id}"] == " ".join(f"{side}={mine.count(side)}" for side in ("BUY", "SELL", "HOLD"))
    assert detail["series"] == "1" and detail["snapshots_duplicate"] == "1"


async def test_a_gap_is_filled_from_influxdb_and_an_unknown_older_snapshot_is_not_applied(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, snapshots: list[IndicatorSnapshot]
) -> None:
    part = snapshots[:160]
    expected = expected_signals(part)
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_indicators(part[1:])  # the very first snapshot never reached InfluxDB
    async with Bus(rabbitmq_url, topology, connection_name="strategy-test") as bus:
        run = Running(settings_for(rabbitmq_url, influxdb_database, topology))
        await publish(bus, part[:2])
        assert await wait_until(lambda: run.handled() == 2, timeout=30)
        # Snapshots 2..59 are lost on the way (but stored); 60.. arrive; then snapshot 0's twin
        # from before the history shows up.
        await publish(bus, part[60:])
        await publish(bus, [snapshots[0].model_copy(update={"candle_time": snapshots[0].candle_time.replace(year=2020)})])
        assert await wait_until(lambda: run.handled() == 2 + 100 + 1, timeout=30), run.agent.counts
        await run.stop()
    assert run.agent.counts["gap_filled"] == 58 and run.agent.counts["out_of_order"] == 1
    received, markers = await drain_signals(rabbitmq_url, signals_queue(topology), len(expected) + 5, timeout=3)
    assert len(markers) == 2 + 58 + 100  # gap-filled candles have theirs; the refused older one none
    same(received, expected)


async def test_a_bad_strategy_config_stops_the_agent_with_a_reason(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[strategies]]\nid = "x"\nkind = "rsi"\n[strategies.params]\noversold = 90\n')
    run = Running(settings_for(rabbitmq_url, influxdb_database, topology, STRATEGY_CONFIG=str(config)))
    await asyncio.wait_for(run.task, 30)
    assert run.agent.exit_code == 1
