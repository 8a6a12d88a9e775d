"""``tradebus backtest``: options, data loading, one run or a grid, and the output.

Standard output carries either the summary table(s) or, with ``--json``, only the result
document; progress, file paths and logs go to standard error.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from agents.backtest.engine import Rejection
    from agents.backtest.runs import RunSpec

__all__ = ["backtest_command"]

_RANKABLE = "sharpe, sortino, total_return, cagr, profit_factor, win_rate, max_drawdown, ..."
# A single run gets a progress bar over its candles from this many on (the engine reports every
# 20,000); a grid always gets one over its runs, and one over the candles of each run too from here.
_LONG_RUN = 50_000
# Kinds of rejection shown with an example on the terminal; the JSON lists every rejection.
_REJECTIONS_SHOWN = 3


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO date/time such as 2021-10-01 or 2021-10-01T12:00Z", param_hint=option) from None
    # A time without an offset is UTC, like every candle time in tradebus.
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def _decimal(text: str, option: str, *, below: Decimal | None = None, unit: str = "") -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=option) from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter(f"{text!r} must be a finite number >= 0", param_hint=option)
    if below is not None and value >= below:
        raise typer.BadParameter(f"{text!r} must be below {below}{unit}", param_hint=option)
    return value


def _bar(console: Console, label: str, *, show: bool) -> Progress:
    """A transient progress bar on ``console`` (standard error), drawn only when ``show``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{label}"), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not show,
    )


def _run_callbacks(progress: Progress, runs: int, traded: int) -> tuple[Callable[[int], None] | None, Callable[[int], None] | None]:
    """``on_done`` and ``on_bars`` for ``run_specs``: a task over the runs of a grid, and one
    over the candles of a run for a single run or, from ``_LONG_RUN`` candles, each grid run."""
    on_done = on_bars = None
    if runs > 1:
        runs_task = progress.add_task("runs", total=runs)

        def on_done(number: int) -> None:
            progress.update(runs_task, completed=number)

    if runs == 1 or traded >= _LONG_RUN:
        candles_task = progress.add_task("candles", total=traded)

        def on_bars(done: int) -> None:
            progress.update(candles_task, completed=done)

    return on_done, on_bars


def _shown_params(spec: RunSpec) -> dict[str, Any]:
    """A run's parameters for its title: the strategy's plain values (not nested members) and
    any indicator override."""
    params = {k: v for k, v in spec.strategy_params.items() if isinstance(v, str | int | float | bool)}
    return {**params, **{k: v for k, v in spec.overrides.items() if k not in spec.strategy_params}}


def _rejection_lines(rejections: Sequence[Rejection], saved: Path | None) -> list[str]:
    """How many signals were not filled and why: the count per kind of reason (the text before
    its first colon) and the first rejection of each of the first kinds; the JSON, which lists
    them all, is named only when it was written."""
    first_of: dict[str, Rejection] = {}
    counts: dict[str, int] = {}
    for rejection in rejections:
        kind = rejection.reason.split(":", 1)[0].strip()
        first_of.setdefault(kind, rejection)
        counts[kind] = counts.get(kind, 0) + 1
    kinds = ", ".join(f"{count} x {kind}" for kind, count in counts.items())
    lines = [f"{len(rejections)} signal(s) not filled ({kinds}), e.g.:"]
    lines += [f"  {r.side} at {r.time:%Y-%m-%d %H:%M} UTC: {r.reason}" for r in list(first_of.values())[:_REJECTIONS_SHOWN]]
    if saved is not None:
        lines.append(f"all of them under 'rejections' in {saved}")
    return lines


def _stem(label: str, symbol: str, timeframe: str, now: datetime) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{label}-{symbol}-{timeframe}")
    return f"backtest-{safe}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def backtest_command(
    strategy: str = typer.Option("sma_cross", "--strategy", "-s", help="strategy kind, an instance id from the strategy config, or your own: path/to/file.py:ClassName or package.module:ClassName"),
    config: Path = typer.Option(None, "--config", exists=True, dir_okay=False, help="strategy config file (TOML/YAML) holding the instance"),
    params: str = typer.Option(None, "--params", "-p", help="overrides: fast=10,slow=30 or a JSON object"),
    grid: str = typer.Option(None, "--grid", "-g", help="sweep: fast=5:20:5,slow=20:60:10 (start:stop:step, stop included)"),
    rank_by: str = typer.Option("sharpe", "--rank-by", help=f"metric to rank a grid by ({_RANKABLE})"),
    top: int = typer.Option(10, "--top", min=1, help="grid rows shown in the table"),
    data: Path = typer.Option(None, "--data", dir_okay=False, help="CSV (Binance klines or with a header) or Parquet, or package:NAME (BTC-USD-15-MIN, BTC-USD-1-DAY, NFLX); default: the package's real BTC 15m data"),
    influx: bool = typer.Option(False, "--influx", help="read the candles from InfluxDB (INFLUXDB_URL); needs --start and --end"),
    start: str = typer.Option(None, "--start", help="first traded candle's open time (ISO, UTC if no offset)"),
    end: str = typer.Option(None, "--end", help="stop before this open time (exclusive)"),
    symbol: str = typer.Option(None, "--symbol", help="default: the instance's symbol, else SYMBOLS' first"),
    exchange: str = typer.Option(None, "--exchange", help="default: EXCHANGE"),
    timeframe: str = typer.Option(None, "--timeframe", help="default: the instance's timeframe, else read from the data file (TIMEFRAME with --influx)"),
    cash: str = typer.Option("10000", "--cash", help="starting quote balance"),
    fee: str = typer.Option(None, "--fee", help="taker fee rate (default: the paper exchange's, 0.001)"),
    slippage_bps: str = typer.Option(None, "--slippage-bps", help="market order slippage in bps (default: the paper exchange's, 5)"),
    fraction: str = typer.Option(None, "--fraction", help="share of the quote balance one BUY uses (1 = all-in; default RISK_SIZING_FRACTION)"),
    risk: str = typer.Option(None, "--risk", help="risk settings as the live risk manager reads them (RISK_* environment, .env) overridden here: max_symbol_exposure=0.8,max_orders_per_hour=4"),
    risk_limits: bool = typer.Option(True, "--risk-limits/--no-risk-limits", help="--no-risk-limits: the strategy alone (no limit refuses; all-in unless --fraction)"),
    fill_at: str = typer.Option("next_open", "--fill-at", help="next_open: decide and fill at the next candle's open; close: at the signal candle's close, as the live replay"),
    exits: str = typer.Option(None, "--exits", help="protective exits: stop_loss=0.03,take_profit=0.06,trailing_stop=0.02,time_stop=48 (fractions of the entry price; time_stop in candles; stop_loss_atr=2 for an ATR multiple); default: the instance's [strategies.exits]"),
    warmup: int = typer.Option(None, "--warmup", min=0, help="candles before --start for the indicators (default: the TA window or the strategy's lookback)"),
    out: Path = typer.Option(Path("results"), "--out", file_okay=False, help="folder for the JSON and PNG results"),
    save: bool = typer.Option(True, "--save/--no-save", help="write the JSON and PNG under --out"),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="write the equity and drawdown PNG"),
    as_json: bool = typer.Option(False, "--json", help="print the result document to stdout instead of the tables"),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="call decide() on every candle, not only where the side can change"),
    live_indicators: bool = typer.Option(False, "--live-indicators", help="indicators over the TA agent's rolling window, bit-identical to live (slower)"),
) -> None:
    """Backtest a strategy on historical candles with the live strategy, sizing and paper-fill
    code: a signal at a candle's close fills at the next candle's open."""
    from rich.console import Console

    from agents.backtest.data import load_file_bars, load_influx_bars, select_window
    from agents.backtest.engine import BacktestConfig, FillAt
    from agents.backtest.riskpath import RiskPath, risk_settings
    from agents.backtest.params import ParamError, parse_grid, parse_params
    from agents.backtest.report import (
        cleaning_lines,
        execution_rule,
        format_params,
        grid_document,
        grid_table,
        plot_equity,
        rejection_table,
        result_document,
        save_document,
        summary_table,
    )
    from agents.backtest.runs import RANKABLE, rank, resolve_strategy, run_specs, spec_for, warmup_for
    from agents.data_collection.replay import ReplayDataError
    from agents.strategy.api import StrategyConfigError, StrategyRuntimeError
    from agents.technical_analysis.settings import TechnicalAnalysisSettings
    from infra.exchanges import load_market_snapshot, market_rules
    from infra.exchanges.paper import PaperConfig
    from infra.exchanges.paper.fills import FeeRates
    from infra.influx import from_settings
    from infra.logging import configure_logging

    from protocol.exits import ExitSettingsError, parse_exits

    configure_logging("backtest", "WARNING")  # JSON lines on stderr: stdout stays the result
    err = Console(stderr=True)
    out_console = Console()
    settings = TechnicalAnalysisSettings()
    try:
        choice = resolve_strategy(strategy, config)
        overrides = parse_params(params)
        combos = [{**overrides, **point} for point in parse_grid(grid)] if grid else [overrides]
        base = settings.indicator_params()
        if len(combos) == 1:
            specs = [spec_for(choice, base, combos[0])]
        else:
            specs, skipped = [], []
            for combo in combos:
                try:
                    specs.append(spec_for(choice, base, combo))
                except StrategyConfigError as exc:  # e.g. fast >= slow: not a point of the grid
                    skipped.append(f"{combo}: {exc}")
            if skipped:
                err.print(f"skipped {len(skipped)} of {len(combos)} grid points with invalid parameters, e.g. {skipped[0]}", soft_wrap=True, markup=False)
            if not specs:
                raise StrategyConfigError("no valid parameter combination in --grid")
    except (StrategyConfigError, ParamError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if rank_by not in RANKABLE:
        raise typer.BadParameter(f"cannot rank by {rank_by!r}; one of {', '.join(RANKABLE)}", param_hint="--rank-by")
    symbol = (symbol or choice.symbol or settings.symbols[0]).upper()
    # A file's timeframe is read from its spacing unless given (a given one must agree with it);
    # InfluxDB holds every timeframe, so there the setting is the default.
    timeframe = timeframe or choice.timeframe or (settings.timeframe if influx else None)
    exchange = exchange or settings.exchange
    first, stop = _moment(start, "--start"), _moment(end, "--end")
    warm = warmup if warmup is not None else warmup_for(specs)
    paper = PaperConfig()
    try:
        rules = market_rules(load_market_snapshot(exchange), symbol)
        bt_config = BacktestConfig(
            rules=rules,
            initial_cash=_decimal(cash, "--cash"),
            fees=FeeRates(taker=_decimal(fee, "--fee", below=Decimal(1), unit=" (a rate: 0.001 is 0.1 %)")) if fee is not None else paper.fees,
            slippage_bps=(
                _decimal(slippage_bps, "--slippage-bps", below=Decimal(10_000), unit=" bps")
                if slippage_bps is not None
                else paper.slippage_bps
            ),
            fraction=_decimal(fraction, "--fraction") if fraction is not None else Decimal(1),
            risk=RiskPath.from_settings(
                risk_settings(risk), fraction=_decimal(fraction, "--fraction") if fraction is not None else None
            ) if risk_limits else None,
            fill_at=FillAt(fill_at),
            exchange=exchange,
            exits=parse_exits(exits) if exits is not None else choice.exits,
        )
        bt_config.sizing  # noqa: B018 - validates the fraction now, with the option's name below
    except ExitSettingsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--exits") from None
    except (KeyError, ValueError) as exc:
        raise typer.BadParameter(str(exc).strip("'\"")) from None

    if influx and (first is None or stop is None):
        raise typer.BadParameter("--influx needs --start and --end")
    try:
        if influx:
            store = from_settings(settings)

            async def fetch() -> Any:
                async with store:
                    return await load_influx_bars(store, exchange=exchange, symbol=symbol, timeframe=timeframe, start=first, end=stop, warmup=warm)

            bars = asyncio.run(fetch())
        else:
            with _bar(err, "loading", show=err.is_terminal) as loading:
                rows = loading.add_task("rows", total=None)
                bars = load_file_bars(
                    data, exchange=exchange, symbol=symbol, timeframe=timeframe, fallback_timeframe=settings.timeframe,
                    progress=lambda done, total: loading.update(rows, completed=done, total=total),
                )
            timeframe = bars.timeframe
            for line in cleaning_lines(bars.cleaning, bars.source):
                err.print(line, soft_wrap=True, markup=False, highlight=False)
        window = select_window(bars, start=first, end=stop, warmup=warm)
    except (ReplayDataError, ValueError) as exc:
        err.print(f"cannot backtest: {exc}", soft_wrap=True, markup=False, style="red")
        raise typer.Exit(2) from None
    except Exception as exc:  # the price store's errors name the server; nothing else to add
        err.print(f"cannot read candles: {type(exc).__name__}: {exc}", soft_wrap=True, markup=False, style="red")
        raise typer.Exit(2) from None

    if first is not None and window.warmup < warm:
        err.print(
            f"warning: only {window.warmup} of {warm} warm-up candles before {first:%Y-%m-%d %H:%M} UTC in {bars.source}; "
            "the first indicators see less history than live ones would",
            soft_wrap=True, markup=False, highlight=False, style="yellow",
        )

    # Progress where a run takes noticeable time: over the runs of a grid, over the candles of
    # a long run.
    show_progress = err.is_terminal and (len(specs) > 1 or window.traded >= _LONG_RUN)
    with _bar(err, "backtest", show=show_progress) as progress:
        on_done, on_bars = _run_callbacks(progress, len(specs), window.traded)
        try:
            results = run_specs(
                window, specs, bt_config, fast=not exhaustive, live_window=live_indicators, on_done=on_done, on_bars=on_bars,
            )
        except StrategyRuntimeError as exc:  # a user strategy's decide() raised or answered nonsense
            err.print(f"cannot backtest: {exc}", soft_wrap=True, markup=False, style="red")
            raise typer.Exit(2) from None

    now = datetime.now(UTC)
    label = choice.strategy_id or choice.kind
    heading = f"{label} {symbol} {timeframe} · {window.traded} candles"
    if len(specs) == 1:
        result, spec = results[0], specs[0]
        document = result_document(result, spec, created_at=now, live_window=live_indicators)
        best = result
        title = f"{heading}\n{format_params(_shown_params(spec))}"
    else:
        spec_of = {id(r): s for r, s in zip(results, specs, strict=True)}
        pairs = [(r, spec_of[id(r)]) for r in rank(results, rank_by)]
        document = grid_document(pairs, rank_by, created_at=now, live_window=live_indicators)
        best = pairs[0][0]
        title = f"{heading}\nbest of {len(pairs)} by {rank_by}: {format_params(pairs[0][1].overrides)}"
    path = None
    if save:
        stem = _stem(label, symbol, timeframe, now)
        path = save_document(document, out, stem)
        err.print(f"saved {path}", soft_wrap=True, markup=False)
        if plot:
            png = plot_equity(best, path.with_suffix(".png"), f"{title} · {execution_rule(best)}")
            err.print(f"saved {png}", soft_wrap=True, markup=False)
    if as_json:
        sys.stdout.write(json.dumps(document, allow_nan=False) + "\n")
        return
    if len(specs) > 1:
        out_console.print(grid_table(pairs, rank_by, top))
    out_console.print(summary_table(best, title, execution_rule(best)))
    if best.rejections:
        out_console.print(rejection_table(best))
        for line in _rejection_lines(best.rejections, path):
            out_console.print(line, soft_wrap=True, markup=False, highlight=False)
