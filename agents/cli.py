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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
