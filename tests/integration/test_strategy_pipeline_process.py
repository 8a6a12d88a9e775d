"""Both agents as OS processes on the real broker and InfluxDB: ~400 real BTC candles in,
signals out, equal to running the analysis and the strategies in process on the same candles."""

from __future__ import annotations

import asyncio
import signal
import threading
import uuid
from collections.abc import AsyncIterator
from typing import IO

import pytest

from agents.data_collection.replay import load_and_clean
from agents.strategy.config import load_strategy_config
from infra.bus import Bus, Topology, system_topology
from infra.influx import InfluxPriceStore
from tests.support.bus import cleanup, drain, drain_signals
from tests.support.pipeline import expected_signals
from tests.support.processes import spawn

pytestmark = pytest.mark.integration

N = 400


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    yield topo
    await cleanup(rabbitmq_url, topo)


class Process:
    """A spawned agent whose output pipes are read continuously: an agent logging into a full
    pipe would block, and the test would measure the pipe, not the agent."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.popen = spawn(module, env=env)
        self.output: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(pipe,), daemon=True)
            for pipe in (self.popen.stdout, self.popen.stderr) if pipe is not None
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.output.append(line)

    async def stop(self) -> tuple[int, str]:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.popen.wait, 30)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
        for reader in self._readers:
            reader.join(5)
        return code, "".join(self.output[-40:])


async def test_candles_in_signals_out_equal_to_the_in_process_run(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology
) -> None:
    candles = load_and_clean(None, exchange="binance", symbol="BTC/USDT", timeframe="15m").candles[4000 : 4000 + N]
    expected = expected_signals(candles)
    assert len(expected) > 50 and {s.strategy_id for s in expected} == {c.strategy_id for c in load_strategy_config()}

    env = {
        "RABBITMQ_URL": rabbitmq_url,
        "INFLUXDB_URL": influxdb_database[0],
        "INFLUXDB_DATABASE": influxdb_database[1],
        "BUS_EXCHANGE": topology.exchange,
        "SYMBOLS": "BTC/USDT",
        "TIMEFRAME": "15m",
        "HEARTBEAT_INTERVAL": "1",
        "LOG_LEVEL": "WARNING",
    }
    analysis = Process("agents.technical_analysis", env)
    strategy = Process("agents.strategy", env)
    try:
        # The data collection agent's rule: store the candles, then publish them.
        async with InfluxPriceStore(*influxdb_database) as store:
            await store.write_candles(candles)
        async with Bus(rabbitmq_url, topology, connection_name="pipeline-test") as bus:
            for candle in candles:
                await bus.publish(candle)
        received, _ = await drain_signals(rabbitmq_url, f"{topology.exchange}.risk_manager.signals", len(expected),
                                          timeout=120, quiet=2.0)
        # Nothing more arrives once the last candle is through.
        extra = await drain(rabbitmq_url, f"{topology.exchange}.risk_manager.signals", expect=1, timeout=2)
    finally:
        results = [await analysis.stop(), await strategy.stop()]
    for code, stderr in results:
        assert code == 0, stderr[-3000:]
    assert extra == []
    order = lambda s: (s.candle_time, s.strategy_id)  # noqa: E731
    got, want = sorted(received, key=order), sorted(expected, key=order)
    assert [order(s) for s in got] == [order(s) for s in want]
    for a, b in zip(got, want, strict=True):
        assert a.model_dump(exclude={"produced_at"}) == b.model_dump(exclude={"produced_at"}), (a.strategy_id, a.candle_time)
