"""The `tradebus` command line: one entry point for operators.

Subcommands that belong to later issues (run, reality-check, backtest, emergency-stop) are added
by those issues; a command is only listed once it does what it says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from agents.runtime.launch import launch
from agents.runtime.registry import AGENTS

app = typer.Typer(help="tradebus: a crypto trading system of five agents on RabbitMQ.", no_args_is_help=True)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@app.command()
def agent(name: str = typer.Argument(..., help=f"one of: {', '.join(AGENTS)}")) -> None:
    """Start one agent in this process (it runs until SIGTERM or Ctrl-C)."""
    raise typer.Exit(launch(name))


@app.command()
def schema(
    out: Path = typer.Option(PROJECT_ROOT / "claudedocs", help="folder for messages.md and schemas/"),
) -> None:
    """Write the JSON Schema of every message and the message catalogue."""
    from protocol.schema_export import write_catalogue, write_schemas

    written = write_schemas(out / "schemas")
    write_catalogue(out / "messages.md")
    typer.echo(f"wrote {len(written)} schema files to {out / 'schemas'} and {out / 'messages.md'}")


@app.command()
def migrate() -> None:
    """Apply the Postgres migrations (DATABASE_URL) up to the newest revision."""
    from infra.db.migrate import upgrade_head
    from infra.settings import Settings, redact_url

    url = Settings().database_url.get_secret_value()
    revision = asyncio.run(upgrade_head(url))
    typer.echo(f"database {redact_url(url)} is at revision {revision}")


@app.command()
def run(
    source: str = typer.Option(None, help="replay or exchange (default: DATA_SOURCE, else replay)"),
    symbols: str = typer.Option(None, help="comma-separated, e.g. BTC/USDT (default: SYMBOLS)"),
    speed: str = typer.Option(None, help="replay speed: 'max' or a multiple of real time (default: REPLAY_SPEED)"),
    limit: int = typer.Option(None, min=1, help="candles per symbol to replay (default: all 8,686 of the BTC data)"),
    offset: int = typer.Option(None, min=0, help="candles per symbol to skip first"),
    strategies: Path = typer.Option(None, exists=True, dir_okay=False, help="strategies config file"),
    follow: bool = typer.Option(False, "--follow", help="keep running after the replay ends (Ctrl-C stops)"),
    fresh: bool = typer.Option(None, "--fresh/--reuse", help="fresh stores for this run (default for replay) or the configured ones"),
    agents: str = typer.Option(",".join(AGENTS), help="comma-separated agents to start"),
    drain_timeout: float = typer.Option(60.0, help="seconds to wait for orders without a terminal report at the end"),
    timeout: float = typer.Option(None, help="give up (exit 1) after this many seconds"),
    live: bool = typer.Option(None, "--live/--plain", help="live panel (default on a terminal) or summary lines"),
    keep_runs: int = typer.Option(3, min=1, help="fresh runs whose databases are kept (older ones are dropped)"),
    check: bool = typer.Option(True, "--check/--no-check", help="run the reality check at the end (exit code: its verdict)"),
) -> None:
    """Run the whole system here: migrate, start the five agents supervised, show progress, and at
    the end of the replay print the portfolio and the reality check (exit code: its verdict)."""
    from agents.run import RunOptions, run_command
    from infra.settings import DataSource

    try:
        chosen_source = DataSource(source.strip().lower()) if source else None
    except ValueError:
        raise typer.BadParameter(f"--source must be replay or exchange, not {source!r}") from None
    options = RunOptions(
        source=chosen_source,
        symbols=symbols,
        speed=speed,
        limit=limit,
        offset=offset,
        strategies=strategies,
        follow=follow,
        fresh=fresh,
        agents=tuple(a.strip() for a in agents.split(",") if a.strip()),
        drain_timeout=drain_timeout,
        timeout=timeout,
        live=live,
        keep_runs=keep_runs,
        reality_check=check,
    )
    raise typer.Exit(run_command(options))


@app.command()
def healthcheck(
    file: Path = typer.Option(None, help="health file (default: TRADEBUS_HEALTH_FILE)"),
    max_age: float = typer.Option(None, help="seconds a heartbeat stays fresh (default: 3 x HEARTBEAT_INTERVAL + 5)"),
) -> None:
    """Exit 0 when this container's agent wrote a fresh HEALTHY heartbeat (Docker healthcheck)."""
    from agents.runtime.health_file import HEALTH_FILE_ENV, check_health_file, health_file_path
    from infra.settings import Settings

    path = file or health_file_path()
    if path is None:
        typer.echo(f"no health file: set {HEALTH_FILE_ENV} or pass --file", err=True)
        raise typer.Exit(1)
    limit = max_age if max_age is not None else 3 * Settings().heartbeat_interval + 5
    healthy, reason = check_health_file(path, limit)
    typer.echo(reason, err=not healthy)
    raise typer.Exit(0 if healthy else 1)


@app.command("reality-check")
def reality_check(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON for machines"),
    watch: float | None = typer.Option(None, "--watch", help="repeat every N seconds until Ctrl-C"),
) -> None:
    """Check heartbeats, queues, dead letters, prices and the ledger; exit 1 on any FAIL."""
    from agents.monitor.reality_check import main as reality_check_main

    raise typer.Exit(reality_check_main(as_json=as_json, watch=watch))


@app.command("emergency-stop")
def emergency_stop(
    state: str = typer.Argument(..., help="on (engage: approve and place nothing) or off (release)"),
    reason: str = typer.Option(..., "--reason", help="why, for the audit trail"),
    by: str = typer.Option("", "--by", help="who asks (default: the login name)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Engage or release the emergency stop (persisted by the risk manager; survives restarts)."""
    import getpass

    from agents.risk_manager.control import emergency_stop_message, publish_control
    from infra.settings import Settings, redact_url

    if state.strip().lower() not in {"on", "off"}:
        raise typer.BadParameter("must be 'on' or 'off'", param_hint="STATE")
    active = state.strip().lower() == "on"
    settings = Settings()
    message = emergency_stop_message(active, reason, by.strip() or getpass.getuser())
    action = "ENGAGE" if active else "RELEASE"
    if not yes:
        typer.confirm(f"{action} the emergency stop on bus exchange {settings.bus_exchange!r} ({reason})?", abort=True)
    asyncio.run(publish_control(settings, message))
    typer.echo(
        f"emergency stop {action}D: published control.emergency_stop {message.message_id} "
        f"(reason: {message.reason}; by: {message.requested_by}) to exchange {settings.bus_exchange!r} "
        f"at {redact_url(settings.rabbitmq_url.get_secret_value())}, confirmed by the broker"
    )


from agents.ops.dead_letters import app as dead_letters_app  # noqa: E402

app.add_typer(dead_letters_app, name="dead-letters")

# Options live with the backtester; the heavy imports happen only when the command runs.
from agents.backtest.cli import backtest_command  # noqa: E402

app.command("backtest")(backtest_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
