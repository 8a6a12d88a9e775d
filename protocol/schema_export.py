"""Generate the message documentation from the models: JSON Schemas and a Markdown catalogue.

The only module in ``protocol`` that touches the filesystem. Output is deterministic (no
timestamps, stable order) so regenerating it only changes git when the contract changed.
"""

from __future__ import annotations

import inspect
import json
import types
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin
from uuid import UUID

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from protocol import enums as enums_module
from protocol import types as types_module
from protocol.envelope import Message
from protocol.messages import (
    CancelOrder,
    Candle,
    ClosePosition,
    DataGap,
    EmergencyStop,
    ExecutionReport,
    Heartbeat,
    IndicatorSnapshot,
    Indicators,
    OrderRequest,
    PauseStrategy,
    PositionUpdate,
    RiskMetrics,
    RiskRejection,
    Signal,
    SignalsDone,
)
from protocol.registry import MESSAGE_CLASSES
from protocol.topics import TOPIC_PATTERNS
from protocol.types import TypeLabel

__all__ = ["FLOW", "write_catalogue", "write_schemas"]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

# Who publishes each message and who consumes it (documentation only).
FLOW: Final[dict[type[Message], tuple[str, str]]] = {
    Candle: ("data_collection", "technical_analysis; risk_manager (protective exits); execution (paper limit fills); history also in InfluxDB"),
    DataGap: ("data_collection", "monitoring"),
    IndicatorSnapshot: ("technical_analysis", "strategy"),
    Signal: ("strategy", "risk_manager"),
    SignalsDone: ("strategy (after a candle's signals)", "risk_manager (a candle's exits wait for the previous candle's)"),
    OrderRequest: ("risk_manager", "execution"),
    RiskRejection: ("risk_manager", "monitoring / audit"),
    ExecutionReport: ("execution", "risk_manager"),
    PositionUpdate: ("risk_manager", "monitoring"),
    RiskMetrics: ("risk_manager", "monitoring"),
    EmergencyStop: ("operator (CLI, API, MCP)", "risk_manager, execution"),
    CancelOrder: ("operator (CLI, API); risk_manager (expired reservations)", "execution"),
    PauseStrategy: ("operator (CLI, API)", "risk_manager"),
    ClosePosition: ("operator (CLI, API)", "risk_manager"),
    Heartbeat: ("every agent", "monitoring"),
}


def _file_name(cls: type[Message]) -> str:
    return f"{cls.SCHEMA_NAME}.v{cls.SCHEMA_VERSION}.json"


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _flow(cls: type[Message]) -> tuple[str, str]:
    if cls not in FLOW:
        raise KeyError(f"{cls.__name__} has no producer/consumer entry in FLOW")
    return FLOW[cls]


def write_schemas(out_dir: Path) -> list[Path]:
    """Write one JSON Schema per message (wire form) plus index.json; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index = []
    for cls in MESSAGE_CLASSES:
        producer, consumers = _flow(cls)
        schema = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:tradebus:{cls.schema_id()}",
            **cls.model_json_schema(by_alias=True, mode="serialization"),
            "x-tradebus": {"kind": cls.KIND, "topic": TOPIC_PATTERNS[cls]},
        }
        path = out_dir / _file_name(cls)
        path.write_text(_dump(schema), encoding="utf-8")
        written.append(path)
        index.append(
            {
                "schema": cls.schema_id(),
                "message": cls.__name__,
                "file": path.name,
                "kind": cls.KIND,
                "topic": TOPIC_PATTERNS[cls],
                "producer": producer,
                "consumers": consumers,
            }
        )
    index_path = out_dir / "index.json"
    index_path.write_text(_dump({"messages": index}), encoding="utf-8")
    written.append(index_path)
    return written


# ------------------------------------------------------------------ type rendering

_PLAIN_NAMES: Final[dict[Any, str]] = {
    str: "str", int: "int", float: "float", bool: "bool", UUID: "UUID", datetime: "datetime",
    type(None): "null",
}


def _label(metadata: list[Any] | tuple[Any, ...]) -> TypeLabel | None:
    return next((item for item in metadata if isinstance(item, TypeLabel)), None)


def _bounds(metadata: list[Any] | tuple[Any, ...]) -> str:
    parts = []
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            parts.append(f">= {item.ge}")
    return f" ({', '.join(parts)})" if parts else ""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *metadata = get_args(tp)
        label = _label(metadata)
        return label.name if label else _type_name(base) + _bounds(metadata)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in get_args(tp))
    if origin is dict:
        key, value = get_args(tp)
        return f"dict[{_type_name(key)}, {_type_name(value)}]"
    if inspect.isclass(tp) and issubclass(tp, Enum | BaseModel):
        return tp.__name__
    return _PLAIN_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _field_type(field: FieldInfo) -> str:
    # Pydantic unwraps a top-level Annotated into annotation + metadata.
    label = _label(field.metadata)
    if label:
        return label.name
    return _type_name(field.annotation) + _bounds(field.metadata)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_table(model: type[BaseModel], names: list[str]) -> list[str]:
    rows = ["| Field | Type | Required | Description |", "|---|---|---|---|"]
    for name in names:
        field = model.model_fields[name]
        wire_name = field.alias or name
        required = "yes" if field.is_required() else "no"
        rows.append(
            f"| `{wire_name}` | {_cell(_field_type(field))} | {required} "
            f"| {_cell(field.description or '')} |"
        )
    return rows


def _summary(doc: str | None) -> str:
    return " ".join(inspect.cleandoc(doc or "").split())


# ------------------------------------------------------------------ catalogue


def _glossary() -> list[str]:
    rows = ["| Type | Meaning |", "|---|---|"]
    for name in types_module.__all__:
        alias = getattr(types_module, name)
        if get_origin(alias) is Annotated:
            label = _label(get_args(alias)[1:])
            if label:
                rows.append(f"| {label.name} | {_cell(label.summary)} |")
    return rows


def _enum_list() -> list[str]:
    lines = []
    for name in enums_module.__all__:
        enum_cls = getattr(enums_module, name)
        values = ", ".join(f"`{member.value}`" for member in enum_cls)
        lines.append(f"- **{name}**: {values}")
    return lines


def _message_section(cls: type[Message]) -> list[str]:
    producer, consumers = _flow(cls)
    own = [name for name in cls.model_fields if name not in Message.model_fields]
    return [
        f"### {cls.__name__} — `{cls.schema_id()}`",
        "",
        _summary(cls.__doc__),
        "",
        f"- Kind: {cls.KIND}",
        f"- Topic: `{TOPIC_PATTERNS[cls]}`",
        f"- Producer → consumers: {producer} → {consumers}",
        f"- JSON Schema: [schemas/{_file_name(cls)}](schemas/{_file_name(cls)})",
        "",
        *_field_table(cls, own),
        "",
    ]


# How a process sends a control (the interface other processes build on).
_CONTROLS: Final = [
    "## Operator controls",
    "",
    "Every control (`control.*`: EmergencyStop, CancelOrder, PauseStrategy, ClosePosition) is built and",
    "published by one module, `agents.ops.controls`, for the CLI, the API and the MCP server alike:",
    "",
    "```python",
    "from agents.ops.controls import ControlKind, build_control, publish_control",
    "",
    "message = build_control(ControlKind.CLOSE_POSITION, strategy_id=\"rsi-btc\", symbol=\"BTC/USDT\",",
    "                        reason=\"flatten before the news\", requested_by=\"alice\", source=\"api\")",
    "await publish_control(bus, message)  # an open infra.bus.Bus; returns after the broker's confirm",
    "message.message_id                   # the tracking handle: rows of the ledger table `controls`",
    "```",
    "",
    "- `build_control(kind, *, reason, requested_by, source, client_order_id=, strategy_id=, symbol=,",
    "  exchange=)` raises `ControlInvalid` (missing target, invalid id, blank reason) with the reason.",
    "  Kinds (`ControlKind`): `ENGAGE_STOP`, `RELEASE_STOP`, `CANCEL_ORDER` (client_order_id),",
    "  `PAUSE_STRATEGY` / `RESUME_STRATEGY` (strategy_id), `CLOSE_POSITION` (strategy_id, symbol",
    "  [, exchange]).",
    "- `publish_control(bus, message)` waits for the confirm (PublishFailed otherwise, also when no",
    "  agent's queue is bound); `send_control(settings, message)` does the same for a process without",
    "  an open bus, bounded, after checking the exchange exists (`ControlNotSent` says why not).",
    "- The agents apply them: the risk manager the stop, pause/resume (BUYs of a paused strategy are",
    "  rejected `STRATEGY_PAUSED`; SELLs pass) and close (a SELL decided like any signal); execution",
    "  the stop and cancel. Each applying agent writes one row per message in `controls` (kind,",
    "  target, requested_by, reason, received_at, agent, outcome `APPLIED` / `REFUSED` with the",
    "  detail), in the transaction of the effect: a redelivery records nothing twice.",
    "- Engaging the stop is published under `control.emergency_stop`, releasing it under",
    "  `control.emergency_stop.release`, so broker permissions can allow one without the other (the",
    "  MCP server may ask for the stop, never lift it). Every consumer refuses a message whose",
    "  routing key is not the one its own fields give (`topic_for`): dead-lettered `misrouted`.",
    "",
]


def write_catalogue(path: Path) -> None:
    """Write the Markdown message catalogue (claudedocs/messages.md) to ``path``."""
    overview = ["| Message | Schema | Kind | Topic | Producer → consumers |", "|---|---|---|---|---|"]
    for cls in MESSAGE_CLASSES:
        producer, consumers = _flow(cls)
        overview.append(
            f"| {cls.__name__} | `{cls.schema_id()}` | {cls.KIND} | `{TOPIC_PATTERNS[cls]}` "
            f"| {_cell(producer)} → {_cell(consumers)} |"
        )
    lines = [
        "# Message catalogue",
        "",
        "<!-- Generated by protocol.schema_export.write_catalogue; do not edit by hand. -->",
        "",
        "Every message is a frozen Pydantic model in `protocol/messages/`, published as UTF-8",
        "JSON on the durable topic exchange `tradebus` under the routing key shown (built only by",
        "`protocol.topics`). Unknown fields are refused. Decimals (prices, quantities, money)",
        "travel as JSON strings, never floats. Timestamps are ISO-8601 UTC. Enum values have one",
        "canonical upper-case spelling; other cases are normalised on input. In routing keys a",
        "symbol `BTC/USDT` becomes `BTC-USDT` (and `:` becomes `_`). With `BUS_PARTITIONS` = N > 1",
        "the keys of candles, indicator snapshots, signals, orders and execution reports end in one",
        "more word, the symbol's partition `p{k}` (k = CRC-32 of the symbol word mod N,",
        "`protocol.topics.partition_of`; decision 0025): `market.candle.binance.BTC-USDT.15m.p3`.",
        "",
        "A message is a **command** (an instruction to one consumer) or an **event** (a fact).",
        "",
        "## Overview",
        "",
        *overview,
        "",
        *_CONTROLS,
        "## Envelope (every message)",
        "",
        "`message_id` is deterministic for derived messages (`Message.caused_by`): the same",
        "parent handled twice yields the same child id, so consumers deduplicate by it.",
        "",
        *_field_table(Message, list(Message.model_fields)),
        "",
        "## Field types",
        "",
        *_glossary(),
        "",
        "## Enums",
        "",
        *_enum_list(),
        "",
        "## Messages",
        "",
    ]
    for cls in MESSAGE_CLASSES:
        lines.extend(_message_section(cls))
    lines += [
        "## Nested models",
        "",
        "### Indicators",
        "",
        _summary(Indicators.__doc__),
        "",
        *_field_table(Indicators, list(Indicators.model_fields)),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
