"""``tradebus strategy``: write a new strategy with its test, list the strategies there are.

``strategy list`` shows the built-in kinds with their parameters (type, default, description)
and every configured instance of the strategy config (STRATEGY_CONFIG or ``--config``) with its
validated parameters — each built as the strategy agent builds it, so a broken user file shows
as broken here, with its file and line, and the exit code is 1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

__all__ = ["app", "builtin_rows", "configured_rows"]

app = typer.Typer(help="Write your own strategy, list the built-in and configured ones.", no_args_is_help=True)


@app.command("new")
def new(
    name: str = typer.Argument(..., help="strategy name, e.g. my_rsi (file my_rsi.py, class MyRsi)"),
    folder: Path = typer.Option(Path("."), "--dir", file_okay=False, help="folder to write the strategy and its test into"),
    force: bool = typer.Option(False, "--force", help="overwrite existing files"),
) -> None:
    """Write NAME.py (a commented strategy on the strategy API) and test_NAME.py (its pytest test)."""
    from agents.strategy.template import TemplateError, class_name, write_strategy

    try:
        strategy_path, test_path = write_strategy(name, folder, force=force)
    except TemplateError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    typer.echo(f"wrote {strategy_path}\nwrote {test_path}")
    typer.echo(f"next: pytest {test_path}")
    typer.echo(f"      tradebus backtest --strategy {strategy_path}:{class_name(name)}")


def _field_rows(params_model: type[Any]) -> dict[str, dict[str, Any]]:
    """name -> type, default (or 'required') and description of a parameter model's fields."""
    rows: dict[str, dict[str, Any]] = {}
    for field_name, info in params_model.model_fields.items():
        required = info.is_required()
        annotation = info.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        rows[field_name] = {
            "type": type_name,
            "default": None if required else _plain(info.get_default(call_default_factory=True)),
            "required": required,
            "description": info.description or "",
        }
    return rows


def _plain(value: Any) -> Any:
    """A JSON-able form of a default (a tuple of models becomes a list of dicts)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def builtin_rows() -> list[dict[str, Any]]:
    """Every built-in kind with its parameter fields."""
    from agents.strategy.strategies import STRATEGY_KINDS

    return [
        {"kind": kind, "class": cls.__name__, "columns": sorted(cls.COLUMNS) if cls.COLUMNS is not None else None,
         "params": _field_rows(cls.Params)}
        for kind, cls in STRATEGY_KINDS.items()
    ]


def configured_rows(config: Path | None) -> tuple[str, list[dict[str, Any]]]:
    """The config file read and every instance in it, built: params (validated, defaults filled
    in) or the error that keeps it from running."""
    from agents.strategy.api import StrategyConfigError
    from agents.strategy.config import DEFAULT_CONFIG_PATH, load_strategy_config
    from agents.strategy.settings import StrategySettings

    settings = StrategySettings()
    path = config or settings.strategy_config or DEFAULT_CONFIG_PATH
    configs = load_strategy_config(
        path, environ=os.environ, default_symbols=settings.symbols, default_timeframe=settings.timeframe, build=False,
    )
    rows = []
    for instance in configs:
        row: dict[str, Any] = {
            "id": instance.strategy_id, "kind": instance.kind, "enabled": instance.enabled,
            "symbols": list(instance.symbols), "timeframe": instance.timeframe,
            "exits": instance.exits.describe() if instance.exits is not None else "none",
        }
        try:
            strategy = instance.build()
        except StrategyConfigError as exc:
            row.update(status="broken", error=str(exc), params=dict(instance.params))
        else:
            row.update(status="ok", error=None, params=strategy.params.model_dump(mode="json"), lookback=strategy.lookback)
        rows.append(row)
    return str(path), rows


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in params.items())


@app.command("list")
def list_strategies(
    config: Path = typer.Option(None, "--config", exists=True, dir_okay=False, help="strategy config (default: STRATEGY_CONFIG, else the shipped one)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of the tables"),
) -> None:
    """Built-in kinds with their parameters, and the configured instances with theirs (exit 1
    when an enabled instance cannot be built)."""
    from rich.console import Console
    from rich.table import Table

    from agents.strategy.api import StrategyConfigError

    builtins = builtin_rows()
    try:
        path, configured = configured_rows(config)
    except StrategyConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config / STRATEGY_CONFIG") from None
    broken = [row for row in configured if row["enabled"] and row["status"] != "ok"]
    if as_json:
        typer.echo(json.dumps({"builtin": builtins, "config": path, "configured": configured}, indent=2))
        raise typer.Exit(1 if broken else 0)
    console = Console(width=max(Console().width, 120))
    kinds = Table(title="built-in strategy kinds", show_lines=True)
    for column in ("kind", "reads", "parameter", "type", "default", "description"):
        kinds.add_column(column, overflow="fold")
    for row in builtins:
        reads = "close only" if row["columns"] == [] else ", ".join(row["columns"] or ["any"])
        for number, (name, field) in enumerate(row["params"].items()):
            default = "required" if field["required"] else json.dumps(field["default"])
            kinds.add_row(row["kind"] if number == 0 else "", reads if number == 0 else "", name, field["type"], default, field["description"])
    console.print(kinds)
    instances = Table(title=f"configured instances ({path})", show_lines=True)
    for column in ("id", "kind", "markets", "enabled", "params / error"):
        instances.add_column(column, overflow="fold")
    for row in configured:
        detail = _params_text(row["params"]) if row["status"] == "ok" else f"BROKEN: {row['error']}"
        instances.add_row(row["id"], row["kind"], f"{','.join(row['symbols'])} {row['timeframe']}", "yes" if row["enabled"] else "no",
                          detail if row["exits"] == "none" else f"{detail}\nexits: {row['exits']}")
    console.print(instances)
    raise typer.Exit(1 if broken else 0)
