"""Parity (issue #18): the replayed slice through the five agents on the bus and through the
backtester give the same signals, decisions (approvals, rejections with their reasons) and
fills — for the shipped strategies, and for a user strategy loaded from a file.

The bus side is the system slice of test_system_replay.py (lock-step replay, real services);
the backtester side is configured from the same environment (agents/backtest/parity.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rich.console import Console

from agents.backtest.parity import backtest_from_settings, bus_outcome, difference_table, differences, summary
from tests.support.chaos import replay_to_end
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import replay_slice

pytestmark = pytest.mark.system

# Limits that bind inside 240 candles, so the comparison covers rejections by reason as well as
# approvals: few orders per hour per strategy, one strategy's position at a time, a confidence floor.
BINDING_LIMITS = {
    "RISK_MAX_ORDERS_PER_HOUR": "1",
    "RISK_MAX_OPEN_POSITIONS": "2",
    "RISK_MIN_CONFIDENCE": "0.55",
    "RISK_SIZING_FRACTION": "0.3",
    "RISK_MAX_TRADE_NOTIONAL": "2500",
}

# Written against the documented API only (agents/strategy/api.py), as a user would.
USER_STRATEGY = '''
from pydantic import Field

from agents.strategy.api import BUY, HOLD, SELL, Decision, IndicatorHistory, Strategy, StrategyParams


class MomentumParams(StrategyParams):
    period: int = Field(default=8, ge=1)
    threshold: float = Field(default=0.002, gt=0)


class Momentum(Strategy):
    """BUY when the close rose more than ``threshold`` over ``period`` candles, SELL when it fell."""

    Params = MomentumParams
    COLUMNS = frozenset()

    @property
    def lookback(self) -> int:
        return self.params.period

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        period, threshold = self.params.period, self.params.threshold
        if i < period:
            return Decision(HOLD, 0.0, "warming up: not enough closes")
        close = history.col("close")
        change = close.item(i) / close.item(i - period) - 1
        used = {"change": change}
        if change > threshold:
            return Decision(BUY, min(1.0, 0.5 + change * 50), f"up {change:.4f}", used)
        if change < -threshold:
            return Decision(SELL, min(1.0, 0.5 - change * 50), f"down {change:.4f}", used)
        return Decision(HOLD, 0.0, f"flat {change:.4f}", used)
'''


async def _parity(run: SystemRun, probe: QueueProbe) -> set[str]:
    """Replay the slice on the bus, backtest it, compare; the exit reasons decided."""
    state = await replay_to_end(run, probe)
    assert state.fills > 0
    ours, _ = backtest_from_settings(replay_slice(), dict(run.env))
    theirs = await bus_outcome(run.database_url)
    assert len(theirs.decisions) == len(state.decisions) > 0
    print(f"backtest {summary(ours)}\nbus      {summary(theirs)}")
    found = differences(ours, theirs)
    if found:
        Console(width=200).print(difference_table(found, limit=20))
    assert found == []
    # Not vacuous: both sides approved and rejected, for more than one reason.
    assert "APPROVED" in theirs.decisions.values()
    assert len(set(theirs.decisions.values()) - {"APPROVED", "IGNORED"}) >= 2
    return {key[3] for key in theirs.decisions if key[3]}


# Protective exits tight enough to trigger within the slice (decision 0023), on every instance.
EXITS = "[strategies.exits]\nstop_loss = 0.006\ntake_profit = 0.012\ntrailing_stop = 0.008\ntime_stop = 16\n"


def with_exits(config: str) -> str:
    """A strategy config with ``EXITS`` under each of its instances."""
    head, *blocks = config.split("\n[[strategies]]")
    return head + "".join(f"\n[[strategies]]{block.rstrip()}\n{EXITS}\n" for block in blocks)


async def test_shipped_strategies_trade_the_same_on_the_bus_and_in_the_backtester(
    make_system: Callable[..., Any], probe: QueueProbe
) -> None:
    await _parity(await make_system(**BINDING_LIMITS), probe)


# With exits a candle's exits come before the strategies' signals at its close on both sides; the
# candle queue's exits wait for the signals of the candle before (decision 0028).
async def test_shipped_strategies_with_exits_trade_the_same_on_the_bus_and_in_the_backtester(
    make_system: Callable[..., Any], probe: QueueProbe, tmp_path: Path
) -> None:
    from agents.strategy.config import DEFAULT_CONFIG_PATH

    config = tmp_path / "strategies.toml"
    config.write_text(with_exits(DEFAULT_CONFIG_PATH.read_text()))
    exits = await _parity(await make_system(STRATEGY_CONFIG=str(config), **BINDING_LIMITS), probe)
    assert exits, "some protective exit was decided"


async def test_a_user_strategy_from_a_file_with_exits_trades_the_same_on_the_bus_and_in_the_backtester(
    make_system: Callable[..., Any], probe: QueueProbe, tmp_path: Path
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "momentum.py").write_text(USER_STRATEGY)
    config = folder / "strategies.toml"
    config.write_text(
        '[[strategies]]\nid = "my-momentum"\nkind = "momentum.py:Momentum"\n[strategies.params]\nperiod = 8\n'
        '\n[[strategies]]\nid = "sma-cross"\nkind = "sma_cross"\n[strategies.params]\nfast = 20\nslow = 50\n'
    )
    config.write_text(with_exits(config.read_text()))
    assert await _parity(await make_system(STRATEGY_CONFIG=str(config), **BINDING_LIMITS), probe)
