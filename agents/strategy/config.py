"""Strategy instances from a TOML or YAML file, with environment overrides.

File shape (TOML; YAML is the same structure with a top-level ``strategies:`` list)::

    [defaults]                 # optional; otherwise SYMBOLS / TIMEFRAME settings
    symbols = ["BTC/USDT"]
    timeframe = "15m"

    [[strategies]]
    id = "rsi-default"         # strategy_id: [a-z0-9][a-z0-9_-]*, unique
    kind = "rsi"               # one of STRATEGY_KINDS, or your own strategy:
                               # "my_strategies/rsi2.py:Rsi2" (relative to this file's folder)
                               # or "mypackage.module:ClassName" (decision 0021)
    enabled = true             # optional, default true
    symbols = ["BTC/USDT"]     # optional, default from [defaults]
    timeframe = "15m"          # optional, default from [defaults]
    [strategies.params]        # optional, validated by the kind's parameter model
    preset = "default"
    [strategies.exits]         # optional protective exits (decision 0023), fractions of the
    stop_loss = 0.03           # entry price; stop_loss_atr = 2 (ATR multiple) instead of
    take_profit = 0.06         # stop_loss; time_stop in candles
    trailing_stop = 0.02
    time_stop = 48

Environment overrides, one value each: ``STRATEGY__<ID>__<FIELD>=value`` where <ID> is the
strategy id upper-cased with "-" written "_" and <FIELD> is ``ENABLED``, ``SYMBOLS``
(comma-separated), ``TIMEFRAME``, ``EXITS`` (replaces the instance's exits, written like
``--exits``: ``STRATEGY__RSI_DEFAULT__EXITS=stop_loss=0.03,time_stop=48``) or a parameter name,
e.g. ``STRATEGY__RSI_DEFAULT__OVERSOLD=28``.
Values are read as JSON when they parse (numbers, true/false, lists) and as text otherwise.
An override naming no configured instance is refused, so a typo cannot pass silently.

Every error names the file, the instance and the field. ``load_strategy_config(build=False)``
checks the file but builds no strategy: the strategy agent builds each instance itself, so a
broken one (a user file that fails to load) is reported while the others run.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from agents.strategy.api import Strategy, StrategyConfigError, describe_validation_error
from agents.strategy.strategies import build_strategy
from protocol import StrategyId, Symbol, Timeframe
from protocol.exits import ExitSettings, ExitSettingsError, parse_exits

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "StrategyInstanceConfig",
    "env_key",
    "load_strategy_config",
]

DEFAULT_CONFIG_PATH: Final = Path(__file__).with_name("strategies.toml")
ENV_PREFIX: Final = "STRATEGY__"
_INSTANCE_FIELDS: Final = {"ENABLED": "enabled", "SYMBOLS": "symbols", "TIMEFRAME": "timeframe"}


class StrategyInstanceConfig(BaseModel):
    """One configured strategy instance: which strategy, on which markets, with what params."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy_id: StrategyId
    kind: str = Field(min_length=1)
    symbols: tuple[Symbol, ...] = Field(min_length=1)
    timeframe: Timeframe
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    # Protective exits of this instance; sent on its every Signal (Signal.exits).
    exits: ExitSettings | None = None
    # The config file's folder: a relative file reference in ``kind`` is resolved from it.
    _base_dir: Path | None = PrivateAttr(default=None)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def base_dir(self) -> Path | None:
        return self._base_dir

    def build(self) -> Strategy:
        """The strategy object (parameters validated by its kind)."""
        return build_strategy(self.kind, self.params, base_dir=self._base_dir)

    def applies_to(self, symbol: str, timeframe: str) -> bool:
        return self.enabled and timeframe == self.timeframe and symbol in self.symbols


def env_key(strategy_id: str) -> str:
    """The <ID> word of an override variable: 'rsi-default' -> 'RSI_DEFAULT'."""
    return strategy_id.upper().replace("-", "_")


def load_strategy_config(
    path: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    default_symbols: Sequence[str] = ("BTC/USDT",),
    default_timeframe: str = "15m",
    build: bool = True,
) -> list[StrategyInstanceConfig]:
    """Read, override from ``environ`` and validate every instance (disabled ones included);
    with ``build`` also build each strategy (its parameters, a user file), else leave that to
    the caller.

    Raises StrategyConfigError with the file, instance and field in the message.
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    raw = _read(file)
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise StrategyConfigError(f"{file}: 'defaults' must be a table")
    entries = raw.get("strategies")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise StrategyConfigError(f"{file}: expected a list of tables under 'strategies' ([[strategies]] in TOML)")
    unknown_top = sorted(set(raw) - {"defaults", "strategies"})
    if unknown_top:
        raise StrategyConfigError(f"{file}: unknown top-level keys {unknown_top}; expected 'defaults' and 'strategies'")

    instances: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for position, entry in enumerate(entries):
        where = f"{file}: strategies[{position}]"
        strategy_id = entry.get("id")
        if not isinstance(strategy_id, str) or not strategy_id:
            raise StrategyConfigError(f"{where}: 'id' is required (a strategy_id such as 'rsi-default')")
        where = f"{file}: strategy {strategy_id!r}"
        key = env_key(strategy_id)
        if key in seen:
            raise StrategyConfigError(
                f"{where}: duplicate id (clashes with {seen[key]!r}; ids must differ after upper-casing and '-' -> '_')"
            )
        seen[key] = strategy_id
        values = {k: v for k, v in entry.items() if k != "id"}
        values.setdefault("symbols", defaults.get("symbols", list(default_symbols)))
        values.setdefault("timeframe", defaults.get("timeframe", default_timeframe))
        values.setdefault("enabled", defaults.get("enabled", True))
        values["params"] = dict(values.get("params") or {})
        instances.append({"strategy_id": strategy_id, **values})

    _apply_overrides(file, instances, seen, environ or {})

    configs: list[StrategyInstanceConfig] = []
    for values in instances:
        where = f"{file}: strategy {values['strategy_id']!r}"
        try:
            config = StrategyInstanceConfig.model_validate(values)
        except ValidationError as exc:
            raise StrategyConfigError(f"{where}: {describe_validation_error(exc)}") from None
        config._base_dir = file.resolve().parent
        if not build:
            configs.append(config)
            continue
        try:
            config.build()
        except StrategyConfigError as exc:
            raise StrategyConfigError(f"{where}: params: {exc}") from None
        configs.append(config)
    return configs


def _read(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise StrategyConfigError(f"{file}: cannot read the strategy config: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise StrategyConfigError(f"{file}: unknown config format {suffix!r}; use .toml, .yaml or .yml")
    except StrategyConfigError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError: report, do not crash
        raise StrategyConfigError(f"{file}: not valid {suffix.lstrip('.').upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise StrategyConfigError(f"{file}: the top level must be a table/mapping")
    return data


def _parse_env_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _apply_overrides(file: Path, instances: list[dict[str, Any]], ids: Mapping[str, str], environ: Mapping[str, str]) -> None:
    by_key = {env_key(values["strategy_id"]): values for values in instances}
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        instance_key, sep, field = rest.partition("__")
        if not sep or not field:
            raise StrategyConfigError(f"{name}: expected {ENV_PREFIX}<ID>__<FIELD>, e.g. STRATEGY__RSI_DEFAULT__OVERSOLD")
        values = by_key.get(instance_key.upper())
        if values is None:
            raise StrategyConfigError(
                f"{name}: no strategy instance {instance_key!r} in {file} (known: {', '.join(sorted(by_key)) or 'none'})"
            )
        raw = environ[name]
        field_key = field.upper()
        if field_key == "EXITS":
            # The --exits spelling (stop_loss=0.03,time_stop=48); checked with the instance.
            try:
                values["exits"] = parse_exits(raw).model_dump(exclude_none=True)
            except ExitSettingsError as exc:
                raise StrategyConfigError(f"{name}: {exc}") from None
        elif field_key in _INSTANCE_FIELDS:
            target = _INSTANCE_FIELDS[field_key]
            values[target] = raw if target == "symbols" else _parse_env_value(raw)
        else:
            values["params"][field.lower()] = _parse_env_value(raw)
