"""The `tradebus` command line: one entry point for operators.

Subcommands that belong to later issues (run, reality-check, backtest, emergency-stop) are added
by those issues; a command is only listed once it does what it says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agents.run.record import RunRecord
    from infra.settings import Settings

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
    symbols: str = typer.Option(None, help="comma-separated, e.g. BTC/USDT or BTC/USDT,NFLX/USDT (default: SYMBOLS)"),
    timeframe: str = typer.Option(None, help="candle timeframe, e.g. 15m or 1d (default: TIMEFRAME)"),
    speed: str = typer.Option(None, help="replay speed: 'max' or a multiple of real time (default: REPLAY_SPEED)"),
    limit: int = typer.Option(None, min=1, help="candles of the first symbol to replay; the others replay the same "
                              "time span (default: all, 8,686 of the BTC 15m data)"),
    offset: int = typer.Option(None, min=0, help="candles of the first symbol to skip first; the others start at the same time"),
    strategies: Path = typer.Option(None, exists=True, dir_okay=False, help="strategies config file"),
    follow: bool = typer.Option(False, "--follow", help="keep running after the replay ends (Ctrl-C stops)"),
    fresh: bool = typer.Option(None, "--fresh/--reuse", help="fresh stores for this run (default for replay) or the configured ones"),
    agents: str = typer.Option(",".join(AGENTS), help="comma-separated agents to start"),
    instances: list[str] = typer.Option(
        [], "--instances", help="ROLE=N: start N instances of an agent sharing its partitions, e.g. "
        "--instances strategy=2 --instances risk-manager=2 (or strategy=2,execution=2)"),
    drain_timeout: float = typer.Option(60.0, help="seconds to wait for orders without a terminal report at the end"),
    timeout: float = typer.Option(None, help="give up (exit 1) after this many seconds"),
    live: bool = typer.Option(None, "--live/--plain", help="live panel (default on a terminal) or summary lines"),
    keep_runs: int = typer.Option(3, min=1, help="fresh runs whose databases are kept (older ones are dropped)"),
    check: bool = typer.Option(True, "--check/--no-check", help="run the reality check at the end (exit code: its verdict)"),
    api: bool = typer.Option(True, "--api/--no-api", help="start the operator console (API_HOST:API_PORT, default 127.0.0.1:8080)"),
    notify: bool = typer.Option(None, "--notify/--no-notify",
                                help="start the alert notifier (default: only when alert targets are configured)"),
) -> None:
    """Run the whole system here: migrate, start the five agents supervised, show progress, and at
    the end of the replay print the portfolio and the reality check (exit code: its verdict)."""
    from agents.run import RunOptions, run_command
    from infra.settings import DataSource

    try:
        chosen_source = DataSource(source.strip().lower()) if source else None
    except ValueError:
        raise typer.BadParameter(f"--source must be replay or exchange, not {source!r}") from None
    from agents.run.instances import parse_instances

    try:
        counts = parse_instances(instances)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    options = RunOptions(
        instances=counts,
        source=chosen_source,
        symbols=symbols,
        timeframe=timeframe,
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
        api=api,
        notify=notify,
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


RUN_OPTION_HELP = "target the stores of this `tradebus run` (see .tradebus/runs/)"
LATEST_OPTION_HELP = "target the stores of the newest `tradebus run` (also one still running)"
RUNS_DIR_OPTION_HELP = "where `tradebus run` records its runs"


def _target(run_id: str | None, latest: bool, runs_dir: Path) -> tuple[Settings, RunRecord | None]:
    """(settings, run record or None) for --run/--latest; exits 2 with the reason when unknown."""
    from agents.run.record import RunNotFound, target_settings
    from infra.settings import Settings

    if run_id is not None and latest:
        raise typer.BadParameter("give --run RUN_ID or --latest, not both")
    try:
        return target_settings(Settings(), run_id=run_id, latest=latest, runs_dir=runs_dir)
    except RunNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command("reality-check")
def reality_check(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON for machines"),
    watch: float | None = typer.Option(None, "--watch", help="repeat every N seconds until Ctrl-C (survives restarts)"),
    run_id: str = typer.Option(None, "--run", help=RUN_OPTION_HELP),
    latest: bool = typer.Option(False, "--latest", help=LATEST_OPTION_HELP),
    runs_dir: Path = typer.Option(Path(".tradebus/runs"), help=RUNS_DIR_OPTION_HELP),
    probe_timeout: float = typer.Option(None, min=0.1, help="seconds each service gets to answer (default 5)"),
) -> None:
    """Check heartbeats, queues, dead letters, prices and the ledger; exit 1 on any FAIL.
    Every probe is bounded: an unreachable, silent or missing store is a FAIL row within seconds."""
    from dataclasses import replace

    from agents.monitor.reality_check import CheckOptions
    from agents.monitor.reality_check import main as reality_check_main

    settings, record = _target(run_id, latest, runs_dir)
    if record is not None and not as_json:
        state = "running" if record.running else f"finished (exit {record.exit_code})"
        typer.echo(f"run {record.run_id} ({state}): database {record.database}, "
                   f"influxdb {record.influx_database}, bus exchange {record.bus_exchange}")
    options = CheckOptions.from_settings(settings, replay_finished=record is not None and record.replay_finished)
    if probe_timeout is not None:
        options = replace(options, probe_timeout=probe_timeout)
    raise typer.Exit(reality_check_main(as_json=as_json, watch=watch, settings=settings, options=options))


@app.command("emergency-stop")
def emergency_stop(
    state: str = typer.Argument(..., help="on (engage: approve and place nothing) or off (release)"),
    reason: str = typer.Option(..., "--reason", help="why, for the audit trail"),
    by: str = typer.Option("", "--by", help="who asks (default: the login name)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    run_id: str = typer.Option(None, "--run", help=RUN_OPTION_HELP),
    latest: bool = typer.Option(False, "--latest", help=LATEST_OPTION_HELP),
    runs_dir: Path = typer.Option(Path(".tradebus/runs"), help=RUNS_DIR_OPTION_HELP),
) -> None:
    """Engage or release the emergency stop (persisted by the risk manager; survives restarts).
    Bounded: exit 1 within seconds, saying why, when the broker or the bus exchange is not there."""
    from agents.monitor.probes import log_to_stderr
    from agents.ops.control_cli import confirm_and_send
    from agents.ops.controls import ControlKind
    from infra.settings import redact_url
    from protocol import topic_for

    if state.strip().lower() not in {"on", "off"}:
        raise typer.BadParameter("must be 'on' or 'off'", param_hint="STATE")
    active = state.strip().lower() == "on"
    settings, _ = _target(run_id, latest, runs_dir)
    log_to_stderr("emergency-stop", settings.log_level)  # JSON lines on stderr, the verdict on stdout
    kind = ControlKind.ENGAGE_STOP if active else ControlKind.RELEASE_STOP
    action = "ENGAGE" if active else "RELEASE"
    message = confirm_and_send(
        settings, kind, reason=reason, by=by, yes=yes, failure=f"emergency stop NOT {action}D",
        prompt=f"{action} the emergency stop on bus exchange {settings.bus_exchange!r} ({reason})?",
    )
    typer.echo(
        f"emergency stop {action}D: published {topic_for(message)} {message.message_id} "
        f"(reason: {message.reason}; by: {message.requested_by}) to exchange {settings.bus_exchange!r} "
        f"at {redact_url(settings.rabbitmq_url.get_secret_value())}, confirmed by the broker"
    )


@app.command("broker-users")
def broker_users(
    apply: bool = typer.Option(False, "--apply", help="run it here (rabbitmqctl must reach the broker)"),
) -> None:
    """Print the RabbitMQ users-and-permissions script (infra/rabbitmq/provision-users.sh), or apply it.

    Passwords come from RABBITMQ_PASSWORD_<ROLE>; see infra/rabbitmq/README.md."""
    import subprocess

    from infra.bus.permissions import provisioning_script

    script = provisioning_script()
    if not apply:
        typer.echo(script, nl=False)
        return
    raise typer.Exit(subprocess.run(["sh", "-c", script], check=False).returncode)


from agents.ops.dead_letters import app as dead_letters_app  # noqa: E402

app.add_typer(dead_letters_app, name="dead-letters")

from agents.ops.control_cli import app as control_app  # noqa: E402

app.add_typer(control_app, name="control")


@app.command("drift")
def drift(
    action: str = typer.Argument("show", help="show (the latest ledger-vs-exchange comparison) or ack (accept it)"),
    by: str = typer.Option("", "--by", help="who acknowledges (default: the login name)"),
) -> None:
    """Show or acknowledge a ledger-versus-exchange balance drift (sandbox/live): an
    unacknowledged drift stops new BUYs (LEDGER_DRIFT); exit 1 while it does."""
    import getpass

    from infra.exchanges.account import drift_command

    if action not in {"show", "ack"}:
        raise typer.BadParameter("must be 'show' or 'ack'", param_hint="ACTION")
    text, blocking = asyncio.run(drift_command(action, by.strip() or getpass.getuser()))
    typer.echo(text)
    raise typer.Exit(1 if blocking else 0)


@app.command("api")
def api(
    host: str = typer.Option(None, help="address to listen on (default: API_HOST, 127.0.0.1)"),
    port: int = typer.Option(None, min=0, max=65535, help="port (default: API_PORT, 8080)"),
) -> None:
    """Serve the operator console: REST under /api/v1, the live stream and the dashboard at /.
    Tokens: API_READ_TOKEN and API_OPERATOR_TOKEN (required outside development)."""
    from agents.api.server import main as api_main
    from agents.api.settings import ApiSettings

    overrides = {key: value for key, value in (("API_HOST", host), ("API_PORT", port)) if value is not None}
    raise typer.Exit(api_main(ApiSettings(**overrides)))  # type: ignore[arg-type]  # aliases


# Options live with the backtester; the heavy imports happen only when the command runs.
from agents.backtest.cli import backtest_command  # noqa: E402

app.command("backtest")(backtest_command)

# `tradebus parity`: the backtester against the agents on the bus (issue #18, decision 0024).
from agents.backtest.parity_cli import parity_command  # noqa: E402

app.command("parity")(parity_command)

# `tradebus strategy new|list`: user strategies (decision 0021).
from agents.strategy.cli import app as strategy_app  # noqa: E402

app.add_typer(strategy_app, name="strategy")


@app.command("mcp")
def mcp(
    transport: str = typer.Option("stdio", "--transport", help="stdio (an MCP client starts this command) or http (streamable HTTP at MCP_HOST:MCP_PORT/mcp, bearer tokens)"),
    read_only: bool = typer.Option(False, "--read-only", help="stdio: refuse the acting tools (propose_signal, request_emergency_stop)"),
    port: int = typer.Option(None, "--port", min=0, max=65535, help="http: port (default: MCP_PORT)"),
) -> None:
    """Model Context Protocol server: read tools, and tools that can only propose (a signal the
    risk manager decides, or an emergency-stop request). It never places, sizes or cancels orders."""
    from agents.mcp.run import Transport, run_mcp

    try:
        chosen = Transport(transport.strip().lower())
    except ValueError:
        raise typer.BadParameter("must be stdio or http", param_hint="--transport") from None
    raise typer.Exit(run_mcp(chosen, read_only=read_only, port=port))


@app.command("notifier")
def notifier() -> None:
    """Start the alert notifier: fills, refused orders, emergency stops, agents DEGRADED or down,
    dead letters, drawdown pauses and ledger drift to NOTIFIER_WEBHOOK_URLS and Telegram
    (TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID); runs until SIGTERM or Ctrl-C."""
    from agents.notifier import NotifierAgent
    from agents.runtime.base import run_agent

    raise typer.Exit(run_agent(NotifierAgent))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
