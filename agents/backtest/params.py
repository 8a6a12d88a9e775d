"""Parameter overrides and grids from the command line.

``--params fast=10,slow=30`` or ``--params '{"fast": 10, "slow": 30}'``: one set of overrides.
``--grid fast=5:20:5,slow=20:60:10``: ``start:stop:step`` ranges, the stop INCLUDED
(5:20:5 -> 5, 10, 15, 20), or a single value; the grid is their cartesian product. Values
are typed by their text: integers, then decimals, then true/false, else kept as text.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["ParamError", "parse_grid", "parse_params", "parse_value"]

Params = dict[str, Any]
_EXAMPLE = '{"fast": 10, "slow": 30}'
_JSON_KINDS: dict[type, str] = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class ParamError(ValueError):
    """A --params or --grid text that cannot be read, with what is wrong in it."""


def parse_value(text: str) -> Any:
    """``"10"`` -> 10, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays text."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return float(number) if number.is_finite() else text


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ParamError(f"{what}: {part.strip()!r} is not name=value")
        pairs.append((key.strip(), value.strip()))
    names = [key for key, _ in pairs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ParamError(f"{what}: {', '.join(duplicates)} given more than once")
    return pairs


def parse_params(text: str | None) -> Params:
    """Overrides from ``name=value,...`` or a JSON object (empty/None: no overrides). A text
    starting with ``{`` or ``[`` is read as JSON and must be an object."""
    if text is None or not text.strip():
        return {}
    stripped = text.strip()
    if stripped.startswith(("{", "[")):  # JSON; only an object names its values
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ParamError(f"--params is not valid JSON ({exc}); a JSON object is required, such as {_EXAMPLE}") from None
        if not isinstance(loaded, dict):
            raise ParamError(f"--params must be a JSON object such as {_EXAMPLE}, not a JSON {_JSON_KINDS.get(type(loaded), 'value')}")
        return dict(loaded)
    return {key: parse_value(value) for key, value in _pairs(stripped, "--params")}


def _range(key: str, spec: str) -> list[Any]:
    parts = spec.split(":")
    if len(parts) == 1:
        return [parse_value(spec)]
    if len(parts) != 3:
        raise ParamError(f"--grid {key}: {spec!r} must be start:stop:step or one value")
    try:
        start, stop, step = (Decimal(part) for part in parts)
    except InvalidOperation:
        raise ParamError(f"--grid {key}: {spec!r} must be numbers start:stop:step") from None
    if step <= 0 or stop < start:
        raise ParamError(f"--grid {key}: {spec!r} needs step > 0 and stop >= start")
    count = int((stop - start) / step) + 1
    # Decimal arithmetic: 0.1:0.3:0.1 gives exactly 0.1, 0.2, 0.3 (floats would drift).
    values = [start + step * n for n in range(count)]
    integral = all(part.lstrip("+-").isdigit() for part in parts)
    return [int(v) if integral else float(v) for v in values]


def parse_grid(text: str) -> list[Params]:
    """Every combination of the grid's values, in a stable order (first name varies slowest)."""
    pairs = _pairs(text, "--grid")
    if not pairs:
        raise ParamError("--grid is empty")
    axes = [(key, _range(key, spec)) for key, spec in pairs]
    names = [key for key, _ in axes]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(values for _, values in axes))]
