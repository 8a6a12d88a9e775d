#!/usr/bin/env python3
"""Benchmark the backtester: bars per second for one SMA-crossover run over the real BTC data,
next to backtesting.py running the same strategy on the same candles in the same process.

Usage: .venv/bin/python scripts/bench_backtest.py [--repeat 7] [--fast 10] [--slow 30]

Both runs get the candles already in memory (tradebus: cleaned ``Bars``; backtesting.py: the
same values as a DataFrame) and are timed from there to the finished statistics: tradebus's
time includes computing the indicators the strategy reads (``Strategy.indicator_columns``:
the close for an SMA crossover, whose averages the strategy computes itself), deciding,
sizing, filling and the metrics; backtesting.py's includes building its
``FractionalBacktest`` and ``run()``. Same parameters, fee (0.1 %), no slippage, all-in,
fills at the next open (see
agents/backtest/reference.py). Each is run ``--repeat`` times in two orders, and the median of
each counts: alternating (every tradebus run starts right after a backtesting.py run, with the
CPU caches full of the other's data, which costs the ~7 ms tradebus run relatively more than the
~80 ms reference run) and in blocks (each engine's repeats back to back, as a user running one
backtest after another sees it). Both ratios are printed.
Also shown: tradebus deciding on every candle (``--exhaustive``). Prints figures; asserts
nothing (the agreement itself is tests/integration/test_backtest_reference.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agents.backtest.data import load_file_bars, select_window  # noqa: E402
from agents.backtest.engine import BacktestConfig, run_backtest  # noqa: E402
from agents.backtest.reference import bars_frame, run_reference_sma  # noqa: E402
from agents.strategy.strategies import build_strategy  # noqa: E402
from agents.technical_analysis.indicators import IndicatorParams  # noqa: E402
from infra.exchanges import load_market_snapshot, market_rules  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--fast", type=int, default=10)
    parser.add_argument("--slow", type=int, default=30)
    args = parser.parse_args()
    console = Console()

    bars = load_file_bars(None, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    frame = bars_frame(bars)
    window = select_window(bars, start=None, end=None, warmup=0)
    rules = market_rules(load_market_snapshot("binance"), "BTC/USDT")
    rules = replace(rules, tick_size=Decimal("1e-8"))  # no price moved: as in the agreement test
    config = BacktestConfig(rules=rules, slippage_bps=Decimal(0))
    strategy = build_strategy("sma_cross", {"fast": args.fast, "slow": args.slow})
    params = IndicatorParams()

    def ours(fast: bool = True) -> tuple[float, object]:
        started = time.perf_counter()
        result = run_backtest(window, strategy, params, config, fast=fast)
        return time.perf_counter() - started, result

    def theirs() -> tuple[float, object]:
        started = time.perf_counter()
        result = run_reference_sma(frame, fast=args.fast, slow=args.slow, cash=10000.0, fee=0.001, lot_step=float(rules.lot_step))
        return time.perf_counter() - started, result

    ours(), theirs()  # warm caches and imports outside the timing
    times: dict[str, list[float]] = {"tradebus": [], "tradebus --exhaustive": [], "backtesting.py": []}
    for _ in range(args.repeat):
        seconds, result = ours()
        times["tradebus"].append(seconds)
        times["tradebus --exhaustive"].append(ours(fast=False)[0])
        seconds, reference = theirs()
        times["backtesting.py"].append(seconds)
    blocked = {
        "tradebus": [ours()[0] for _ in range(args.repeat)],
        "tradebus --exhaustive": [ours(fast=False)[0] for _ in range(args.repeat)],
        "backtesting.py": [theirs()[0] for _ in range(args.repeat)],
    }

    n = len(bars)
    median = {name: statistics.median(values) for name, values in times.items()}
    median_blocked = {name: statistics.median(values) for name, values in blocked.items()}
    table = Table(title=f"SMA crossover {args.fast}/{args.slow} over {n} real BTC-USD 15m candles, median of {args.repeat}")
    for column in ("engine", "order", "seconds", "bars/s", "× backtesting.py"):
        table.add_column(column, justify="right" if column not in ("engine", "order") else "left")
    for order, medians in (("alternating", median), ("blocks", median_blocked)):
        for name, seconds in medians.items():
            ratio = medians["backtesting.py"] / seconds
            table.add_row(name, order, f"{seconds:.4f}", f"{n / seconds:,.0f}", f"{ratio:.1f}")
    console.print(table)
    ours_entries = [t.entry.bar for t in result.trades]  # type: ignore[attr-defined]
    same = ours_entries == reference.entries  # type: ignore[attr-defined]
    final, ref_final = result.metrics.final_equity, reference.final_equity  # type: ignore[attr-defined]
    for order, medians in (("alternating", median), ("blocks", median_blocked)):
        print(f"{order}: tradebus {n / medians['tradebus']:,.0f} bars/s; backtesting.py "
              f"{n / medians['backtesting.py']:,.0f} bars/s; ratio {medians['backtesting.py'] / medians['tradebus']:.1f}x "
              "(target >= 10x)")
    print(f"same {len(ours_entries)} trades: {same}; final equity {final:.2f} vs {ref_final:.2f} "
          f"({100 * (final / ref_final - 1):+.6f}%)")


if __name__ == "__main__":
    main()
