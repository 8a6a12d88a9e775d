"""`tradebus backtest` end to end: a Binance kline CSV in, JSON/PNG/tables out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.backtest.data import Bars
from agents.cli import app

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def kline_csv(btc_bars: Bars, tmp_path: Path) -> Path:
    """1,500 real candles as a headerless Binance kline export (ms open times)."""
    lines = []
    for c in btc_bars.candles[:1500]:
        opened = int(c.open_time.timestamp() * 1000)
        closed = int(c.close_time.timestamp() * 1000) - 1
        lines.append(f"{opened},{c.open},{c.high},{c.low},{c.close},{c.volume},{closed},0,0,0,0,0")
    path = tmp_path / "BTCUSDT-15m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_json_grid_in_a_real_process_prints_only_the_document(kline_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable, "-m", "agents.cli", "backtest", "--data", str(kline_csv), "--start", "2021-10-05",
        "--grid", "fast=5:10:5,slow=20:30:10", "--rank-by", "sortino", "--json", "--out", str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # the whole of stdout is the document
    assert document["kind"] == "grid" and document["rank_by"] == "sortino" and document["runs"] == 4
    sortinos = [row["metrics"]["sortino"] for row in document["ranking"]]
    assert sortinos == sorted(sortinos, reverse=True)
    best = document["best"]
    assert best["config"]["data"]["source"] == str(kline_csv)
    assert best["config"]["window"]["start"] == "2021-10-05T00:00:00Z"
    saved = sorted(out.iterdir())
    assert [p.suffix for p in saved] == [".json", ".png"] and saved[0].name.startswith("backtest-sma_cross-BTC-USDT-15m-")
    assert json.loads(saved[0].read_text())["ranking"] == document["ranking"]
    assert "saved" in done.stderr


def test_summary_table_and_refusals(kline_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The command routes logs to stderr for its process; keep this test process's logging as is.
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)
    runner = CliRunner()
    result = runner.invoke(app, ["backtest", "--data", str(kline_csv), "--params", "fast=10,slow=30", "--no-save"])
    assert result.exit_code == 0, result.output
    assert "Total return" in result.stdout and "fill at open t+1" in result.stdout and "Sharpe" in result.stdout
    assert not list(tmp_path.glob("*.json"))
    bad = [
        ["--params", "fast=30,slow=10"],  # refused by the strategy's own validation
        ["--grid", "fast=5:10:5", "--rank-by", "luck"],
        ["--strategy", "no-such-strategy"],
        ["--influx"],  # needs --start and --end
    ]
    for arguments in bad:
        refused = runner.invoke(app, ["backtest", "--data", str(kline_csv), "--no-save", *arguments])
        assert refused.exit_code == 2, (arguments, refused.output)
    missing = runner.invoke(app, ["backtest", "--data", str(tmp_path / "none.csv"), "--no-save"])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_hourly_data_without_a_timeframe_is_backtested_as_hourly(btc_bars: Bars, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)
    # The real 15m candles that open on the hour, as an hourly series (prices real, spacing 1h).
    lines = []
    for c in btc_bars.candles[:4000]:
        if c.open_time.minute:
            continue
        opened = int(c.open_time.timestamp() * 1000)
        lines.append(f"{opened},{c.open},{c.high},{c.low},{c.close},{c.volume},{opened + 3_599_999},0,0,0,0,0")
    path = tmp_path / "BTCUSDT-1h.csv"
    path.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["backtest", "--data", str(path), "--params", "fast=10,slow=30", "--no-save"])
    assert result.exit_code == 0, result.output
    assert "BTC/USDT 1h" in result.stdout and "15m" not in result.output
    wrong = runner.invoke(app, ["backtest", "--data", str(path), "--timeframe", "15m", "--no-save"])
    assert wrong.exit_code == 2 and "its candles are 1h apart, not 15m; use timeframe 1h" in wrong.output


def test_exits_option_closes_trades_and_refuses_bad_values(kline_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)
    runner = CliRunner()
    done = runner.invoke(app, ["backtest", "--data", str(kline_csv), "--params", "fast=10,slow=30", "--no-save", "--json",
                               "--exits", "stop_loss=0.003,take_profit=0.004,time_stop=8"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["config"]["exits"] == {"stop_loss": "0.003", "take_profit": "0.004", "time_stop": 8}
    reasons = {trade["exit_reason"] for trade in document["trades"] if trade["exit"] is not None}
    assert reasons >= {"STOP_LOSS", "TAKE_PROFIT"} and reasons <= {"STOP_LOSS", "TAKE_PROFIT", "TIME_STOP", "SIGNAL"}
    for text, message in [("stop_loss=2", "less than 1"), ("stop=0.1", "unknown exit 'stop'"), ("time_stop=x", "whole number")]:
        refused = runner.invoke(app, ["backtest", "--data", str(kline_csv), "--no-save", "--exits", text])
        assert refused.exit_code == 2 and "--exits" in refused.output and message in refused.output, refused.output
