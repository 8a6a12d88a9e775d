"""A user strategy from a file in a temporary folder, written only against agents.strategy.api:
`tradebus backtest --strategy file.py:Class` and the real strategy agent on the real broker
(indicator snapshots in, signals out) decide the same sides at the same candles — and a broken
instance next to it (a file with a syntax error, a decide() that raises) is reported while the
others keep publishing (decision 0021)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.backtest.data import load_file_bars
from agents.cli import app
from agents.strategy.agent import StrategyAgent
from agents.strategy.settings import StrategySettings
from infra.bus import Bus, Topology, system_topology
from infra.influx import InfluxPriceStore
from protocol import Candle, HealthState
from tests.support.bus import cleanup, drain_signals, wait_until
from tests.support.pipeline import snapshots_of

pytestmark = pytest.mark.integration

FIRST, N = 3000, 400

# Close crossing its fast EMA, with a confidence from the distance: reads a previous row, the
# close and one declared indicator.
USER_STRATEGY = '''
from pydantic import Field

from agents.strategy.api import BUY, HOLD, SELL, Decision, IndicatorHistory, Strategy, StrategyParams


class EmaCrossParams(StrategyParams):
    scale: float = Field(default=0.002, gt=0, description="distance (fraction of the EMA) for confidence 1")


class EmaCross(Strategy):
    Params = EmaCrossParams
    COLUMNS = frozenset({"ema_fast"})

    @property
    def lookback(self) -> int:
        return 1

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        ema, close = history.col("ema_fast"), history.col("close")
        if i == 0 or ema.item(i - 1) != ema.item(i - 1):
            return Decision(HOLD, 0.0, "warming up: ema_fast not available")
        before = close.item(i - 1) - ema.item(i - 1)
        after = close.item(i) - ema.item(i)
        used = {"close": close.item(i), "ema_fast": ema.item(i)}
        confidence = min(1.0, 0.5 + abs(after) / ema.item(i) / self.params.scale / 2)
        if before <= 0.0 < after:
            return Decision(BUY, confidence, f"close crossed above EMA {ema.item(i):.2f}", used)
        if before >= 0.0 > after:
            return Decision(SELL, confidence, f"close crossed below EMA {ema.item(i):.2f}", used)
        return Decision(HOLD, 0.0, "no crossing", used)


class Flaky(EmaCross):
    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        if i == 150:
            raise ValueError("a bug at candle 150")
        return super().decide(history, i)


class Stuck(EmaCross):
    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        if i == 200:
            import time
            time.sleep(4)  # a strategy that blocks (or loops) instead of answering
        return super().decide(history, i)
'''


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    """N real BTC candles, cleaned exactly as `tradebus backtest` cleans the package data."""
    bars = load_file_bars(None, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    return list(bars.candles[FIRST : FIRST + N])


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    yield topo
    await cleanup(rabbitmq_url, topo)


async def test_a_user_strategy_file_signals_on_the_bus_what_its_backtest_decided(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, candles: list[Candle],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "my_strategies"
    folder.mkdir()
    (folder / "ema_cross.py").write_text(USER_STRATEGY)
    (folder / "broken.py").write_text("from agents.strategy.api import Strategy\n\n\nclass Broken(Strategy)\n    pass\n")

    # The backtest, through the CLI, of exactly these candles (no warm-up in front).
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [
        "backtest", "--strategy", "my_strategies/ema_cross.py:EmaCross", "--params", "scale=0.003",
        "--start", candles[0].open_time.isoformat(), "--end", candles[-1].close_time.isoformat(),
        "--warmup", "0", "--json", "--no-save",
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["config"]["window"]["candles"] == N and document["trades"]
    backtest = [(candles[s["bar"]].open_time, s["side"], s["confidence"], s["reason"]) for s in document["signals"]]
    assert {side for _, side, _, _ in backtest} == {"BUY", "SELL", "HOLD"}

    # The same file in the live agent's config, relative to the config's folder, next to a
    # built-in kind, a file that does not compile and a strategy whose decide() raises.
    config = folder / "strategies.toml"
    config.write_text(
        '[[strategies]]\nid = "mine"\nkind = "ema_cross.py:EmaCross"\n[strategies.params]\nscale = 0.003\n\n'
        '[[strategies]]\nid = "rsi-builtin"\nkind = "rsi"\n\n'
        '[[strategies]]\nid = "oops"\nkind = "broken.py:Broken"\n\n'
        '[[strategies]]\nid = "flaky"\nkind = "ema_cross.py:Flaky"\n\n'
        '[[strategies]]\nid = "stuck"\nkind = "ema_cross.py:Stuck"\n'
    )
    snapshots = snapshots_of(candles)
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_indicators(snapshots)  # the analysis agent stores before it publishes
    settings = StrategySettings(
        RABBITMQ_URL=rabbitmq_url, INFLUXDB_URL=influxdb_database[0], INFLUXDB_DATABASE=influxdb_database[1],
        BUS_EXCHANGE=topology.exchange, HEARTBEAT_INTERVAL=0.5, STRATEGY_CONFIG=str(config),
        STRATEGY_DECIDE_TIMEOUT=0.5,
    )
    agent = StrategyAgent(settings)
    task = asyncio.create_task(agent.run(install_signal_handlers=False))
    async with Bus(rabbitmq_url, topology, connection_name="strategy-user-test") as bus:
        for snapshot in snapshots:
            await bus.publish(snapshot)
        assert await wait_until(lambda: getattr(agent, "counts", {}).get("new", 0) == N, timeout=60), "all snapshots handled"
        health, problems = agent.health, agent.heartbeat().detail.get("problems", "")
        agent.request_stop()
        await asyncio.wait_for(task, 30)
    assert agent.exit_code == 0
    queue = f"{topology.exchange}.risk_manager.signals"
    received, _ = await drain_signals(rabbitmq_url, queue, 10 * N, timeout=3)

    mine = sorted((s for s in received if s.strategy_id == "mine"), key=lambda s: s.candle_time)
    live = [(s.candle_time, s.side.value, float(s.confidence), s.reason) for s in mine]
    assert live == backtest  # the same sides at the same candles, with the same confidence and reason
    assert {s.strategy for s in mine} == {"ema_cross.py:EmaCross"}

    # The others kept running: the built-in kind published, the broken ones are reported.
    assert any(s.strategy_id == "rsi-builtin" for s in received)
    assert health is HealthState.DEGRADED
    assert f"strategy oops cannot be built: {folder / 'broken.py'}:4: syntax error" in problems
    raise_line = next(n for n, text in enumerate(USER_STRATEGY.splitlines(), 1) if "raise ValueError" in text)
    assert f"strategy flaky decide failed: {folder / 'ema_cross.py'}:{raise_line}: Flaky.decide at row 150" in problems
    flaky = [s for s in received if s.strategy_id == "flaky"]
    assert flaky and max(s.candle_time for s in flaky) < candles[150].open_time
    assert [(s.candle_time, s.side) for s in flaky] == [(s.candle_time, s.side) for s in mine if s.candle_time < candles[150].open_time]
    # A decide() that does not answer is broken at STRATEGY_DECIDE_TIMEOUT; the others went on.
    assert "strategy stuck decide did not answer within 0.5 s (STRATEGY_DECIDE_TIMEOUT)" in problems
    stuck = [s for s in received if s.strategy_id == "stuck"]
    assert stuck and max(s.candle_time for s in stuck) < candles[200].open_time
    assert [(s.candle_time, s.side) for s in stuck] == [(s.candle_time, s.side) for s in mine if s.candle_time < candles[200].open_time]
