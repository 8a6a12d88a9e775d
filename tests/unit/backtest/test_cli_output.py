"""What `tradebus backtest` tells its user: the warm-up, refusals of bad input, cleaning,
rejected signals, grid winners, and progress over long runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.progress import Progress
from typer.testing import CliRunner, Result

from agents.backtest.cli import _LONG_RUN, _run_callbacks
from agents.backtest.data import Bars, select_window
from agents.backtest.engine import BacktestConfig
from agents.backtest.runs import resolve_strategy, run_specs, spec_for
from agents.cli import app
from agents.strategy.strategies import StrategyConfigError
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules


def _kline_lines(bars: Bars, count: int) -> list[str]:
    lines = []
    for c in bars.candles[:count]:
        opened = int(c.open_time.timestamp() * 1000)
        closed = int(c.close_time.timestamp() * 1000) - 1
        lines.append(f"{opened},{c.open},{c.high},{c.low},{c.close},{c.volume},{closed},0,0,0,0,0")
    return lines


@pytest.fixture
def kline_csv(btc_bars: Bars, tmp_path: Path) -> Path:
    """1,500 real candles (from 2021-09-27 13:45 UTC, no gap) as a Binance kline export."""
    path = tmp_path / "BTCUSDT-15m.csv"
    path.write_text("\n".join(_kline_lines(btc_bars, 1500)) + "\n")
    return path


@pytest.fixture
def backtest(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The command routes logs to stderr for its process; keep this test process's logging as is.
    monkeypatch.setattr("infra.logging.configure_logging", lambda *a, **k: None)
    runner = CliRunner()

    def invoke(*arguments: str) -> Result:
        return runner.invoke(app, ["backtest", *arguments], env={"COLUMNS": "80"})

    return invoke


def test_the_default_window_starts_after_the_warmup(backtest, kline_csv: Path, btc_bars: Bars) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), "--json", "--no-save")
    assert done.exit_code == 0, done.output
    window = json.loads(done.stdout)["config"]["window"]
    assert window["warmup_candles"] == 500 and window["candles"] == 1000
    assert window["start"] == btc_bars.candles[500].open_time.isoformat().replace("+00:00", "Z")
    assert "warning" not in done.stderr


def test_a_short_warmup_before_start_is_warned_about(backtest, kline_csv: Path) -> None:  # type: ignore[no-untyped-def]
    short = backtest("--data", str(kline_csv), "--start", "2021-10-01", "--no-save")
    assert short.exit_code == 0, short.output
    warnings = [line for line in short.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: only 329 of 500 warm-up candles before 2021-10-01 00:00 UTC in ")
    assert "329 (+329 warm-up)" not in short.stdout and "(+329 warm-up)" in short.stdout
    enough = backtest("--data", str(kline_csv), "--start", "2021-10-05", "--no-save")
    assert enough.exit_code == 0 and "warning" not in enough.stderr


def test_too_little_data_for_the_default_warmup_is_refused(backtest, kline_csv: Path) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), "--end", "2021-10-01", "--no-save")
    assert done.exit_code == 2
    assert "cannot backtest: only 329 candles of BTC/USDT 15m before 2021-10-01T00:00:00+00:00" in done.stderr


def test_another_symbol_on_the_package_data_is_refused(backtest) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--symbol", "ETH/USDT", "--no-save")
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert "the package dataset has BTC/USDT candles; symbol 'ETH/USDT' needs a replay file" in done.stderr


@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [("--fee", "1", "below 1 "), ("--fee", "2", "below 1 "), ("--slippage-bps", "10000", "below 10000 "), ("--slippage-bps", "20000", "below 10000 ")],
)
def test_costs_of_100_percent_or_more_are_refused(backtest, kline_csv: Path, option: str, value: str, bound: str) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), option, value, "--no-save")
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert f"Invalid value for {option}: '{value}' must be {bound}" in done.output


def test_refused_rows_and_gaps_are_said(backtest, btc_bars: Bars, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = _kline_lines(btc_bars, 1500)
    del lines[700:703]  # a gap of 3 candles
    partial = lines[1000].split(",")
    partial[0] = str(int(partial[0]) + 62_000)  # 62 s after a grid time: a bar still forming
    lines.insert(1001, ",".join(partial))
    path = tmp_path / "some-bad.csv"
    path.write_text("\n".join(lines) + "\n")
    done = backtest("--data", str(path), "--no-save")
    assert done.exit_code == 0, done.output
    block = [line for line in done.stderr.splitlines() if line.startswith(("data ", "  "))]
    assert block[0] == f"data {path}: 1498 rows -> 1497 candles"
    assert block[1].startswith("  refused 1 rows: 1 x not aligned to the 15m grid (partial bar) (row 1002 at ")
    assert block[2].startswith("  1 gaps, 3 missing candles (not filled); largest: 3 from ")


def test_a_file_of_bad_rows_says_why_no_candle_was_made(backtest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "allbad.csv"
    path.write_text(
        "1633046400000,43000,42000,43500,43100,10,1633047299999,0,0,0,0,0\n"
        "1633047300000,abc,43500,42900,43100,5,1633048199999,0,0,0,0,0\n"
    )
    done = backtest("--data", str(path), "--no-save")
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert f"cannot backtest: no candles of BTC/USDT 15m in {path}: 2 rows read, all refused: " in done.stderr
    assert "1 x high must be >= low" in done.stderr and "1 x open: price must be a decimal number, got 'abc'" in done.stderr


def test_rejections_are_named_and_the_json_only_when_written(backtest, kline_csv: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unsaved = backtest("--data", str(kline_csv), "--cash", "5", "--no-save")
    assert unsaved.exit_code == 0, unsaved.output
    lines = unsaved.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "signal(s) not filled" in line)
    assert " x INSUFFICIENT_BALANCE" in lines[first] and lines[first].endswith("), e.g.:")
    examples = lines[first + 1 : first + 4]
    assert any(line.startswith("  BUY at ") and "INSUFFICIENT_BALANCE: 5 USDT available" in line for line in examples)
    # The reason table, like the live audit's rejections by reason.
    assert any(line.startswith("│ INSUFFICIENT_BALANCE ") for line in lines[:first])
    assert "JSON" not in unsaved.stdout and "'rejections'" not in unsaved.stdout
    out = tmp_path / "results"
    saved = backtest("--data", str(kline_csv), "--cash", "5", "--no-plot", "--out", str(out))
    [path] = out.glob("*.json")
    assert f"all of them under 'rejections' in {path}" in saved.stdout
    assert len(json.loads(path.read_text())["rejections"]) == int(lines[first].split()[0])


def test_tables_at_80_columns(backtest, kline_csv: Path) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), "--params", "fast=10,slow=30", "--no-save")
    assert done.exit_code == 0, done.output
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert lines[0] == "sma_cross BTC/USDT 15m · 1000 candles"
    assert lines[1] == "fast=10, slow=30, strength_window=50"
    assert "signal at close t → fill at open t+1" in lines  # whole, on a line of its own
    assert any(line.startswith("│ Buy and hold (no fees) ") for line in lines)
    # The tables fit; the rejection examples after them are prose lines, never cut.
    tables = lines[: next((i for i, line in enumerate(lines) if "signal(s) not filled" in line), len(lines))]
    assert max(len(line) for line in tables) <= 80


def test_the_grid_names_its_winner_and_buy_and_hold(backtest, kline_csv: Path) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), "--grid", "fast=5:10:5,slow=20:30:10", "--no-save")
    assert done.exit_code == 0, done.output
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert lines[0] == "grid: 4 runs ranked by sharpe (best 4)"
    assert lines[1].startswith("best: fast=")
    winner = lines[1].removeprefix("best: ")
    fast, slow = (int(part.split("=")[1]) for part in winner.split(", "))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    first_row = next(row for row in rows if row[0] == "1")
    assert first_row[1:3] == [str(fast), str(slow)]
    hold = [line for line in lines if line.startswith("buy and hold (no fees) over the same candles: ")]
    assert len(hold) == 1
    assert f"best of 4 by sharpe: {winner}" in lines
    summary_hold = next(line for line in lines if line.startswith("│ Buy and hold (no fees)"))
    assert hold[0].rsplit(" ", 1)[1] == summary_hold.split()[-2]


def test_params_that_look_like_json_must_be_an_object(backtest, kline_csv: Path) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), "--params", "[1,2]", "--no-save")
    assert done.exit_code == 2 and "must be a JSON object" in done.output and "name=value" not in done.output


def test_unknown_strategy_lists_each_name_once() -> None:
    with pytest.raises(StrategyConfigError) as caught:
        resolve_strategy("no-such-strategy")
    known = str(caught.value).split("known: ", 1)[1].split(", ")
    assert "combined" in known and len(known) == len(set(known))


def test_a_single_run_reports_progress_over_its_candles(btc_bars: Bars, rules: MarketRules) -> None:
    window = select_window(btc_bars, start=None, end=None, warmup=500)
    spec = spec_for(resolve_strategy("sma_cross"), IndicatorParams(), {})
    seen: list[int] = []
    run_specs(window, [spec], BacktestConfig(rules=rules), on_bars=seen.append)
    assert seen[0] == 0 and seen[-1] == window.traded == 8186 and seen == sorted(seen)
    # The CLI's bar: one task over the candles of a single run, driven by those calls.
    progress = Progress(disable=True)
    on_done, on_bars = _run_callbacks(progress, 1, window.traded)
    assert on_done is None and on_bars is not None
    run_specs(window, [spec], BacktestConfig(rules=rules), on_done=on_done, on_bars=on_bars)
    [task] = progress.tasks
    assert (task.description, task.total, task.completed) == ("candles", 8186, 8186)


def test_a_grid_reports_runs_and_on_long_series_candles() -> None:
    progress = Progress(disable=True)
    on_done, on_bars = _run_callbacks(progress, 3, 1000)
    assert on_done is not None and on_bars is None and [t.description for t in progress.tasks] == ["runs"]
    long = Progress(disable=True)
    on_done, on_bars = _run_callbacks(long, 3, _LONG_RUN)
    assert on_done is not None and on_bars is not None
    on_bars(_LONG_RUN // 2)
    on_done(1)
    assert [(t.description, t.completed) for t in long.tasks] == [("runs", 1), ("candles", _LONG_RUN // 2)]


def test_risk_options_set_the_live_settings_and_rejections_are_counted_by_reason(backtest, kline_csv: Path) -> None:  # type: ignore[no-untyped-def]
    done = backtest("--data", str(kline_csv), "--params", "fast=5,slow=12", "--risk", "min_order_interval=21600", "--json", "--no-save")
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["config"]["risk_limits"]["min_order_interval"] == 21600.0
    assert document["config"]["sizing"]["fraction"] == "0.1"  # RISK_SIZING_FRACTION's default, as live
    counts = document["rejections_by_reason"]
    assert counts["MIN_ORDER_INTERVAL"] > 0 and sum(counts.values()) == len(document["rejections"])
    # Each BUY/SELL signal says what became of it, like the live audit.
    outcomes = {s["outcome"] for s in document["signals"]}
    assert {"FILLED", "MIN_ORDER_INTERVAL"} <= outcomes
    unlimited = json.loads(backtest("--data", str(kline_csv), "--params", "fast=5,slow=12", "--no-risk-limits", "--json", "--no-save").stdout)
    assert unlimited["config"]["risk_limits"] is None and unlimited["config"]["sizing"]["fraction"] == "1"
    refused = backtest("--data", str(kline_csv), "--risk", "max_open_position=2", "--no-save")
    assert refused.exit_code == 2 and "RISK_MAX_OPEN_POSITIONS" in refused.output
