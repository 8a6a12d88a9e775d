"""`tradebus strategy new` and `tradebus strategy list`, and `tradebus backtest --strategy
file.py:Class` with a user strategy (decision 0021)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.cli import app

runner = CliRunner()

USER_STRATEGY = '''
from pydantic import Field

from agents.strategy.api import BUY, HOLD, SELL, Decision, Strategy, StrategyParams


class BandParams(StrategyParams):
    low: float = Field(default=0.1, description="BUY under this %B")
    high: float = Field(default=0.9, description="SELL over this %B")


class Band(Strategy):
    Params = BandParams
    COLUMNS = frozenset({"bb_percent_b"})

    def decide(self, history, i):
        b = history.col("bb_percent_b").item(i)
        if b != b:
            return Decision(HOLD, 0.0, "warming up")
        if b < self.params.low:
            return Decision(BUY, 0.7, f"%B {b:.2f} low", {"b": b})
        if b > self.params.high:
            return Decision(SELL, 0.7, f"%B {b:.2f} high", {"b": b})
        return Decision(HOLD, 0.0, "inside", {"b": b})
'''


@pytest.fixture(autouse=True)
def _quiet_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # The backtest command routes logs to stderr for its process; keep this process's logging.
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)


def run_pytest(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider"],
        cwd=path.parent, capture_output=True, text=True, timeout=120,
    )


def test_strategy_new_writes_a_strategy_whose_own_test_passes_and_catches_a_change(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    result = runner.invoke(app, ["strategy", "new", "swing-rsi", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    strategy, test = folder / "swing_rsi.py", folder / "test_swing_rsi.py"
    assert f"tradebus backtest --strategy {strategy}:SwingRsi" in result.output
    text = strategy.read_text()
    assert "class SwingRsi(Strategy):" in text and "from agents.strategy.api import" in text
    done = run_pytest(test)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr

    # The generated test checks the strategy it came with: a changed rule fails it.
    strategy.write_text(text.replace("if before < low <= now:", "if before < low < now - 100:"))
    done = run_pytest(test)
    assert done.returncode == 1 and "2 failed, 1 passed" in done.stdout, done.stdout

    again = runner.invoke(app, ["strategy", "new", "swing_rsi", "--dir", str(folder)])
    assert again.exit_code == 2 and "already exist" in again.output
    assert runner.invoke(app, ["strategy", "new", "9lives", "--dir", str(folder)]).exit_code == 2


def test_strategy_list_shows_builtin_and_configured_strategies_with_their_parameters(tmp_path: Path) -> None:
    (tmp_path / "band.py").write_text(USER_STRATEGY)
    (tmp_path / "broken.py").write_text("from agents.strategy.api import Strategy\n\nclass Broken(Strategy)\n")
    config = tmp_path / "strategies.toml"
    config.write_text(
        '[[strategies]]\nid = "band"\nkind = "band.py:Band"\n[strategies.params]\nlow = 0.05\n\n'
        '[[strategies]]\nid = "fast-rsi"\nkind = "rsi"\nsymbols = ["ETH/USDT"]\n[strategies.params]\npreset = "aggressive"\n'
        '[strategies.exits]\nstop_loss = 0.03\ntime_stop = 48\n'
    )
    result = runner.invoke(app, ["strategy", "list", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    builtin = {row["kind"]: row for row in document["builtin"]}
    assert set(builtin) == {"rsi", "macd_cross", "bollinger_reversion", "sma_cross", "combined"}
    assert builtin["sma_cross"]["params"]["fast"] == {"type": "int", "default": 20, "required": False, "description": ""}
    assert builtin["rsi"]["params"]["oversold"]["description"] == "BUY below this RSI"
    assert builtin["combined"]["params"]["members"]["required"] is True
    configured = {row["id"]: row for row in document["configured"]}
    # Validated parameters, defaults filled in (the preset's thresholds too).
    assert configured["band"]["params"] == {"low": 0.05, "high": 0.9} and configured["band"]["status"] == "ok"
    assert configured["fast-rsi"]["params"] == {"preset": "aggressive", "oversold": 35.0, "overbought": 65.0}
    assert configured["fast-rsi"]["symbols"] == ["ETH/USDT"]
    assert configured["fast-rsi"]["exits"] == "stop_loss=0.03,time_stop=48" and configured["band"]["exits"] == "none"

    table = runner.invoke(app, ["strategy", "list", "--config", str(config)])
    assert table.exit_code == 0
    assert "low=0.05, high=0.9" in table.stdout and "preset=aggressive, oversold=35.0, overbought=65.0" in table.stdout
    assert "strength_window" in table.stdout  # a built-in kind's parameter
    assert "exits: stop_loss=0.03,time_stop=48" in table.stdout

    # A broken user file shows as broken with its file and line, and the exit code says so.
    config.write_text(config.read_text() + '\n[[strategies]]\nid = "oops"\nkind = "broken.py:Broken"\n')
    result = runner.invoke(app, ["strategy", "list", "--config", str(config), "--json"])
    assert result.exit_code == 1
    oops = {row["id"]: row for row in json.loads(result.stdout)["configured"]}["oops"]
    assert oops["status"] == "broken" and f"{tmp_path / 'broken.py'}:3: syntax error" in oops["error"]


def test_backtest_runs_a_user_strategy_file_and_names_a_broken_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "band.py").write_text(USER_STRATEGY)
    monkeypatch.chdir(tmp_path)  # a relative path on the command line is read from here
    args = ["backtest", "--start", "2021-10-01", "--end", "2021-10-08", "--no-save", "--json"]
    result = runner.invoke(app, [*args, "--strategy", "band.py:Band", "--params", "low=0.05"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["config"]["strategy"]["kind"] == "band.py:Band"
    assert document["config"]["strategy"]["params"] == {"low": 0.05, "high": 0.9}
    assert document["trades"] and {s["side"] for s in document["signals"]} == {"BUY", "SELL", "HOLD"}
    assert all(s["reason"].startswith(("%B", "inside")) for s in document["signals"])

    (tmp_path / "broken.py").write_text("from agents.strategy.api import Strategy\nimport not_installed_anywhere\n")
    result = runner.invoke(app, [*args, "--strategy", "broken.py:Band"])
    assert result.exit_code == 2
    assert "broken.py:2: raised while loading: ModuleNotFoundError" in " ".join(result.output.replace("│", " ").split())
