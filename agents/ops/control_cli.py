"""`tradebus control`: send an operator control and see what the agents did with it.

    tradebus control pause STRATEGY_ID --reason R       BUYs of that strategy instance rejected
    tradebus control resume STRATEGY_ID --reason R
    tradebus control close STRATEGY_ID SYMBOL --reason R [--exchange E]   a SELL through the risk path
    tradebus control cancel CLIENT_ORDER_ID --reason R
    tradebus control list [--limit N] [--id MESSAGE_ID]  the ledger's record of controls

Each sends through ``agents.ops.controls`` (as the API and MCP do), then waits up to ``--wait``
seconds for the applying agent's row in the ledger and prints it: exit 0 when APPLIED, 1 when
not sent, REFUSED or not recorded in time. The emergency stop keeps its own command
(`tradebus emergency-stop on|off`).
"""

from __future__ import annotations

import asyncio
import getpass
import uuid
from pathlib import Path

import typer

from agents.ops.controls import ControlInvalid, ControlKind, ControlNotSent, build_control, describe, send_control
from infra.db.controls import ControlView, read_controls
from infra.settings import Settings
from protocol import ControlOutcome

app = typer.Typer(help="Pause or resume a strategy, close a position, cancel an order; list the controls.",
                  no_args_is_help=True)

_REASON = typer.Option(..., "--reason", help="why, for the audit trail")
_BY = typer.Option("", "--by", help="who asks (default: the login name)")
_YES = typer.Option(False, "--yes", "-y", help="do not ask for confirmation")
_WAIT = typer.Option(10.0, "--wait", min=0.0, help="seconds to wait for the agents' record (0: do not wait)")
_RUN = typer.Option(None, "--run", help="a run's id: use that run's stores and bus exchange")
_LATEST = typer.Option(False, "--latest", help="use the newest run's stores and bus exchange")
_RUNS_DIR = typer.Option(Path(".tradebus/runs"), help="where `tradebus run` keeps its runs")
# Poll interval while waiting for the record, and the bound of one query.
_POLL, _QUERY_TIMEOUT = 0.2, 5.0


def _settings(run_id: str | None, latest: bool, runs_dir: Path) -> Settings:
    from agents.cli import _target  # the CLI's one --run/--latest resolution (imported late: cli imports us)

    return _target(run_id, latest, runs_dir)[0]


async def _rows(settings: Settings, message_id: uuid.UUID | None, limit: int, wait: float = 0.0) -> list[ControlView]:
    """The controls table's rows (of one message, waited for up to ``wait`` seconds)."""
    from infra.db import create_engine, session_factory

    engine = create_engine(settings.database_url.get_secret_value())
    try:
        sessions = session_factory(engine)
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            rows = await asyncio.wait_for(read_controls(sessions, limit=limit, message_id=message_id), _QUERY_TIMEOUT)
            if rows or asyncio.get_running_loop().time() >= deadline:
                return rows
            await asyncio.sleep(_POLL)
    finally:
        await engine.dispose()


def _row_text(row: ControlView) -> str:
    return (f"{row.received_at:%Y-%m-%d %H:%M:%S} {row.agent}: {row.outcome.value} {row.kind.value} {row.target} "
            f"(by {row.requested_by}: {row.reason}) - {row.detail}")


def _send(kind: ControlKind, reason: str, by: str, yes: bool, wait: float, run_id: str | None, latest: bool,
          runs_dir: Path, **target: str | None) -> None:
    settings = _settings(run_id, latest, runs_dir)
    try:
        message = build_control(kind, reason=reason, requested_by=by.strip() or getpass.getuser(), **target)
    except ControlInvalid as exc:
        raise typer.BadParameter(str(exc)) from None
    if not yes:
        typer.confirm(f"send {describe(message)} on bus exchange {settings.bus_exchange!r}?", abort=True)
    try:
        asyncio.run(send_control(settings, message))
    except ControlNotSent as exc:
        typer.echo(f"control NOT sent: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"sent {describe(message)}, confirmed by the broker")
    if wait <= 0:
        return
    try:
        rows = asyncio.run(_rows(settings, message.message_id, 10, wait))
    except Exception as exc:  # the control is sent; only the read-back failed
        typer.echo(f"could not read the record ({type(exc).__name__}: {exc}); see `tradebus control list`", err=True)
        raise typer.Exit(1) from None
    if not rows:
        typer.echo(f"no agent recorded it within {wait:.0f}s: is the system running? see `tradebus control list`", err=True)
        raise typer.Exit(1)
    for row in rows:
        typer.echo(_row_text(row))
    if any(row.outcome is not ControlOutcome.APPLIED for row in rows):
        raise typer.Exit(1)


@app.command("pause")
def pause(strategy_id: str = typer.Argument(..., help="strategy instance, e.g. rsi-btc-15m"), reason: str = _REASON,
          by: str = _BY, yes: bool = _YES, wait: float = _WAIT, run_id: str = _RUN, latest: bool = _LATEST,
          runs_dir: Path = _RUNS_DIR) -> None:
    """Pause one strategy instance: its BUYs are rejected STRATEGY_PAUSED, its SELLs still pass."""
    _send(ControlKind.PAUSE_STRATEGY, reason, by, yes, wait, run_id, latest, runs_dir, strategy_id=strategy_id)


@app.command("resume")
def resume(strategy_id: str = typer.Argument(..., help="strategy instance"), reason: str = _REASON, by: str = _BY,
           yes: bool = _YES, wait: float = _WAIT, run_id: str = _RUN, latest: bool = _LATEST,
           runs_dir: Path = _RUNS_DIR) -> None:
    """Resume a paused strategy instance."""
    _send(ControlKind.RESUME_STRATEGY, reason, by, yes, wait, run_id, latest, runs_dir, strategy_id=strategy_id)


@app.command("close")
def close(strategy_id: str = typer.Argument(..., help="strategy instance"),
          symbol: str = typer.Argument(..., help="e.g. BTC/USDT"),
          exchange: str = typer.Option(None, "--exchange", help="exchange of the position (default: EXCHANGE)"),
          reason: str = _REASON, by: str = _BY, yes: bool = _YES, wait: float = _WAIT, run_id: str = _RUN,
          latest: bool = _LATEST, runs_dir: Path = _RUNS_DIR) -> None:
    """Close a strategy's position: a SELL of all of it, decided by the risk manager like any signal."""
    _send(ControlKind.CLOSE_POSITION, reason, by, yes, wait, run_id, latest, runs_dir, strategy_id=strategy_id,
          symbol=symbol, exchange=exchange)


@app.command("cancel")
def cancel(client_order_id: str = typer.Argument(..., help="the order's client order id (tb-...)"),
           reason: str = _REASON, by: str = _BY, yes: bool = _YES, wait: float = _WAIT, run_id: str = _RUN,
           latest: bool = _LATEST, runs_dir: Path = _RUNS_DIR) -> None:
    """Cancel an open order (execution reports it CANCELED; an unknown or finished one is refused)."""
    _send(ControlKind.CANCEL_ORDER, reason, by, yes, wait, run_id, latest, runs_dir, client_order_id=client_order_id)


@app.command("list")
def list_controls(limit: int = typer.Option(20, "--limit", min=1, help="newest N rows"),
                  message_id: str = typer.Option(None, "--id", help="only this control's rows"),
                  run_id: str = _RUN, latest: bool = _LATEST, runs_dir: Path = _RUNS_DIR) -> None:
    """The ledger's record of controls, newest first: who asked what, why, and what each agent did."""
    settings = _settings(run_id, latest, runs_dir)
    try:
        wanted = uuid.UUID(message_id) if message_id else None
    except ValueError:
        raise typer.BadParameter(f"{message_id!r} is not a message id (UUID)", param_hint="--id") from None
    try:
        rows = asyncio.run(_rows(settings, wanted, limit))
    except Exception as exc:
        typer.echo(f"could not read the controls ({type(exc).__name__}: {exc})", err=True)
        raise typer.Exit(1) from None
    for row in rows:
        typer.echo(_row_text(row))
    if not rows:
        typer.echo("no controls recorded")
