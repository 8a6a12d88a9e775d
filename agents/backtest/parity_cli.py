"""``tradebus parity``: a slice of the package's real candles through the five agents on the bus
(``tradebus run``'s machinery: fresh stores, replay, paper) and through the backtester, and the
difference of their signals, decisions and fills (agents/backtest/parity.py).

Exit code: 0 when both agree, 1 when they differ, 2 when the bus run itself failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import typer

__all__ = ["parity_command"]

# Lock-step replay (as the system tests run it): each candle's signals are decided and filled
# before the next candles arrive, so the bus run depends on the candles alone.
_LOCK_STEP = {"INGEST_BATCH_SIZE": "2", "MAX_BACKLOG": "2", "RISK_SETTLE_WAIT": "60"}


def parity_command(
    offset: int = typer.Option(4000, "--offset", min=0, help="candles of the package data to skip first"),
    limit: int = typer.Option(240, "--limit", min=2, help="candles to run through both"),
    strategies: Path = typer.Option(None, "--strategies", exists=True, dir_okay=False, help="strategy config (default: STRATEGY_CONFIG, else the shipped one)"),
    risk: str = typer.Option(None, "--risk", help="risk settings for both sides on top of RISK_* / .env: max_orders_per_hour=2,min_confidence=0.6"),
    logs: Path = typer.Option(Path(".tradebus/parity"), "--logs", file_okay=False, help="where the bus run's logs and record go"),
    timeout: float = typer.Option(900.0, "--timeout", help="give up on the bus run after this many seconds"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON on stdout"),
) -> None:
    """Run the same candles through the backtester and the agents on the bus; print where their
    signals, decisions (approvals, rejections with reasons) and fills differ."""
    from rich.console import Console

    from agents.backtest.parity import backtest_from_settings, bus_outcome, difference_table, differences, summary, summary_table
    from agents.backtest.riskpath import risk_overrides, risk_settings
    from agents.data_collection.replay import load_and_clean
    from agents.run import RunOptions
    from agents.run.command import RunSession
    from agents.run.display import run_console
    from agents.run.record import latest_run_id, load_record
    from infra.logging import configure_logging
    from infra.settings import DataSource, Settings

    out, err = Console(), Console(stderr=True)
    try:
        overrides = risk_overrides(risk)
        risk_settings(risk)  # the values validated before anything runs
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--risk") from None
    env = {**_LOCK_STEP, **{k: v for k, v in os.environ.items() if k in _LOCK_STEP}, **overrides}
    os.environ.update(env)  # the agents of the run inherit it
    base = Settings()
    symbol, timeframe = base.symbols[0], base.timeframe
    candles = load_and_clean(None, exchange=base.exchange, symbol=symbol, timeframe=timeframe).candles[offset : offset + limit]
    if len(candles) < 2:
        err.print(f"tradebus parity: only {len(candles)} candle(s) at offset {offset}", markup=False)
        raise typer.Exit(2)

    configure_logging("parity", base.log_level)
    options = RunOptions(
        source=DataSource.REPLAY, symbols=symbol, limit=limit, offset=offset, strategies=strategies, fresh=True,
        live=False, api=False, notify=False, log_dir=logs, timeout=timeout,
    )
    code = asyncio.run(RunSession(options, run_console(sys.stderr)).execute())
    if code != 0:
        err.print(f"tradebus parity: the bus run failed (exit {code}); logs under {logs}/", markup=False)
        raise typer.Exit(2)
    record = load_record(logs, latest_run_id(logs), base)
    database_url = record.settings(base).database_url.get_secret_value()
    theirs = asyncio.run(bus_outcome(database_url))
    ours, _ = backtest_from_settings(candles, env, strategy_config=str(strategies.resolve()) if strategies else None)
    found = differences(ours, theirs)
    if as_json:
        document = {
            "slice": {"offset": offset, "limit": limit, "symbol": symbol, "timeframe": timeframe},
            "run": record.run_id,
            "backtest": summary(ours),
            "bus": summary(theirs),
            "differences": [
                {"strategy_id": d.key[0], "candle_time": d.key[1].isoformat(), "side": d.key[2], "exit": d.key[3] or None, "what": d.what,
                 "backtest": d.backtest, "bus": d.bus}
                for d in found
            ],
        }
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        out.print(summary_table(ours, theirs))
        if found:
            out.print(difference_table(found))
            out.print(f"{len(found)} difference(s)", markup=False)
        else:
            out.print("no difference: same signals, decisions and fills", markup=False)
    raise typer.Exit(1 if found else 0)

