"""Indicators on demand on the real broker and InfluxDB (decision 0022).

* The technical analysis agent reads the strategy config (RSI 7 and RSI 14 instances side by
  side, a user file reading EMA 50), computes exactly that union, publishes it in every
  snapshot's ``extra`` with the values TA-Lib gives when called directly, and stores it.
* A user strategy in a temporary folder reading ``rsi_7`` backtests, and the strategy agent,
  restarted mid-stream, rebuilds its ``rsi_7`` history from InfluxDB and publishes exactly the
  backtest's signals.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import talib
from typer.testing import CliRunner

from agents.backtest.data import load_file_bars
from agents.cli import app
from agents.strategy.agent import StrategyAgent
from agents.strategy.settings import StrategySettings
from agents.technical_analysis import TechnicalAnalysisAgent, TechnicalAnalysisSettings
from agents.technical_analysis.indicators import COLUMNS
from infra.bus import Bus, Topology, system_topology
from infra.influx import InfluxPriceStore
from protocol import Candle, IndicatorSnapshot, decode
from tests.support.bus import cleanup, drain, drain_signals, wait_until
from tests.support.pipeline import snapshots_of

pytestmark = pytest.mark.integration

SERIES = ("binance", "BTC/USDT", "15m")

EMA_FILE = '''
from agents.strategy.api import HOLD, Decision, Strategy


class Ema50(Strategy):
    COLUMNS = frozenset({"ema_50"})

    def decide(self, history, i):
        return Decision(HOLD, 0.0, "watching ema_50")
'''

# RSI 7 leaving its extreme zones: reads the previous row too, so a history rebuilt without
# rsi_7 would decide differently right after a restart.
RSI_TURN_FILE = '''
from agents.strategy.api import BUY, HOLD, SELL, Decision, IndicatorHistory, Strategy


class RsiTurn(Strategy):
    COLUMNS = frozenset({"rsi_7"})

    @property
    def lookback(self) -> int:
        return 1

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        rsi = history.col("rsi_7")
        now = rsi.item(i)
        before = rsi.item(i - 1) if i > 0 else float("nan")
        if now != now or before != before:
            return Decision(HOLD, 0.0, "warming up: rsi_7 not available")
        used = {"rsi_7": now, "rsi_7_prev": before}
        if before < 30.0 <= now:
            return Decision(BUY, 0.75, f"RSI7 {now:.2f} rose above 30", used)
        if before > 70.0 >= now:
            return Decision(SELL, 0.75, f"RSI7 {now:.2f} fell below 70", used)
        return Decision(HOLD, 0.0, "no turn", used)
'''


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    bars = load_file_bars(None, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    return list(bars.candles[4000:4300])


@pytest.fixture
async def topology(rabbitmq_url: str) -> AsyncIterator[Topology]:
    topo = system_topology(f"tbtest_{uuid.uuid4().hex[:10]}")
    yield topo
    await cleanup(rabbitmq_url, topo)


async def run_until(agent: TechnicalAnalysisAgent | StrategyAgent, done: object) -> None:
    """Run ``agent`` in this process until ``done()`` holds, then stop it cleanly."""
    task = asyncio.create_task(agent.run(install_signal_handlers=False))
    try:
        assert await wait_until(done, timeout=90), "the agent did not finish its work"  # type: ignore[arg-type]
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 30)
    assert agent.exit_code == 0


def same(value: object, expected: float) -> bool:
    return value is None if math.isnan(expected) else value is not None and float(value) == expected  # type: ignore[arg-type]


async def test_the_analysis_agent_publishes_and_stores_the_union_the_strategies_declare(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, candles: list[Candle], tmp_path: Path
) -> None:
    series = candles[:120]
    (tmp_path / "ema50.py").write_text(EMA_FILE)
    config = tmp_path / "strategies.toml"
    config.write_text(
        '[[strategies]]\nid = "rsi-7"\nkind = "rsi"\n[strategies.params]\nperiod = 7\n\n'
        '[[strategies]]\nid = "rsi-14"\nkind = "rsi"\n[strategies.params]\nperiod = 14\n\n'
        '[[strategies]]\nid = "trend"\nkind = "ema50.py:Ema50"\n\n'
        '[[strategies]]\nid = "off"\nkind = "rsi"\nenabled = false\n[strategies.params]\nperiod = 21\n'
    )
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.ensure_database()
        await store.write_candles(series)  # data collection stores before it publishes
    settings = TechnicalAnalysisSettings(  # type: ignore[call-arg]
        _env_file=None, RABBITMQ_URL=rabbitmq_url, INFLUXDB_URL=influxdb_database[0],
        INFLUXDB_DATABASE=influxdb_database[1], BUS_EXCHANGE=topology.exchange, HEARTBEAT_INTERVAL="0.5",
        STRATEGY_CONFIG=str(config), TA_DEFAULT_SET="false",
    )
    agent = TechnicalAnalysisAgent(settings, topology)
    async with Bus(rabbitmq_url, topology, connection_name="declared-ta-test") as bus:
        for candle in series:
            await bus.publish(candle)
    await run_until(agent, lambda: agent.snapshots_published == len(series))
    assert agent.columns == ("ema_50", "rsi_14", "rsi_7")  # the union, each once; nothing else
    assert agent.heartbeat_detail()["indicators"] == "3"
    messages = await drain(rabbitmq_url, f"{topology.exchange}.strategy.indicators", expect=len(series), timeout=30)
    received = [decode(m.body, IndicatorSnapshot) for m in messages]
    assert [s.candle_time for s in received] == [c.open_time for c in series]

    # TA-Lib called directly on the same real candles (the window, 500, holds them all).
    close = np.array([float(c.close) for c in series])
    expected = {"rsi_7": talib.RSI(close, 7), "rsi_14": talib.RSI(close, 14), "ema_50": talib.EMA(close, 50)}
    for i, snapshot in enumerate(received):
        for name, values in expected.items():
            assert same(snapshot.extra.get(name), values[i]), (i, name, snapshot.extra.get(name), values[i])
        assert set(snapshot.extra) <= set(expected)
        assert all(getattr(snapshot.indicators, name) is None for name in COLUMNS)  # TA_DEFAULT_SET=false
    assert "rsi_7" in received[7].extra and "rsi_7" not in received[6].extra  # RSI 7 warms up over 7 candles
    assert "ema_50" in received[49].extra and "ema_50" not in received[48].extra

    async with InfluxPriceStore(*influxdb_database) as store:
        stored = await store.indicators_between(*SERIES, series[0].open_time, series[-1].close_time)
    assert [s.message_id for s in stored] == [s.message_id for s in received]
    assert [s.extra for s in stored] == [s.extra for s in received]


async def test_a_user_strategy_reading_rsi_7_backtests_and_runs_live_across_a_restart_identically(
    rabbitmq_url: str, influxdb_database: tuple[str, str], topology: Topology, candles: list[Candle],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "rsi_turn.py").write_text(RSI_TURN_FILE)

    # The backtest of exactly these candles (no warm-up in front), through the CLI.
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [
        "backtest", "--strategy", "mine/rsi_turn.py:RsiTurn", "--start", candles[0].open_time.isoformat(),
        "--end", candles[-1].close_time.isoformat(), "--warmup", "0", "--json", "--no-save",
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    backtest = [(candles[s["bar"]].open_time, s["side"], s["reason"]) for s in document["signals"]]
    assert {side for _, side, _ in backtest} == {"BUY", "SELL", "HOLD"}

    # What the analysis agent publishes with this strategy configured: the fixed set and rsi_7.
    snapshots = snapshots_of(candles, (*COLUMNS, "rsi_7"))
    async with InfluxPriceStore(*influxdb_database) as store:
        await store.write_indicators(snapshots)  # stored before published
    config = folder / "strategies.toml"
    config.write_text('[[strategies]]\nid = "turn"\nkind = "rsi_turn.py:RsiTurn"\n')
    settings = StrategySettings(
        RABBITMQ_URL=rabbitmq_url, INFLUXDB_URL=influxdb_database[0], INFLUXDB_DATABASE=influxdb_database[1],
        BUS_EXCHANGE=topology.exchange, HEARTBEAT_INTERVAL=0.5, STRATEGY_CONFIG=str(config),
    )
    # The restart falls right after an RSI 7 turn, so the first decision after it reads a
    # rebuilt previous row.
    turns = [i for i, s in enumerate(snapshots) if s.candle_time in {t for t, side, _ in backtest if side != "HOLD"}]
    half = next(i for i in turns if i > len(snapshots) // 3)
    async with Bus(rabbitmq_url, topology, connection_name="declared-strategy-test") as bus:
        first = StrategyAgent(settings)
        for snapshot in snapshots[:half]:
            await bus.publish(snapshot)
        await run_until(first, lambda: getattr(first, "counts", {}).get("new", 0) == half)
        second = StrategyAgent(settings)
        for snapshot in snapshots[half:]:
            await bus.publish(snapshot)
        await run_until(second, lambda: getattr(second, "counts", {}).get("new", 0) == len(snapshots) - half)
    # The second process rebuilt rsi_7 from InfluxDB: its history holds every row's value.
    (history,) = second.histories.values()
    expected_rsi = [float(s.extra["rsi_7"]) if "rsi_7" in s.extra else np.nan for s in snapshots]
    assert np.array_equal(history.col("rsi_7"), expected_rsi, equal_nan=True)

    received, _ = await drain_signals(rabbitmq_url, f"{topology.exchange}.risk_manager.signals", len(snapshots), timeout=3)
    live = sorted((s.candle_time, s.side.value, s.reason) for s in received)
    assert live == backtest  # the same sides at the same candles, across the restart
    # The first candle after the restart is a turn: decided from the rebuilt previous row.
    assert [s.side.value for s in received if s.candle_time == snapshots[half].candle_time] in (["BUY"], ["SELL"])
    assert {s.indicators.get("rsi_7") is not None for s in received if s.side.value != "HOLD"} == {True}
