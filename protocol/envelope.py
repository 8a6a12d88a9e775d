"""The envelope every message carries, and the rules for deriving one message from another."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self
from uuid import UUID, uuid4, uuid5

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.types import NonEmptyStr, UtcDatetime

__all__ = ["Message", "MessageKind", "derive_message_id"]

MessageKind = Literal["command", "event"]

# Fields caused_by() owns; letting callers pass them would break the chain it guarantees.
_CHAIN_FIELDS = frozenset({"message_id", "correlation_id", "causation_id"})


def derive_message_id(parent_id: UUID, *parts: str) -> UUID:
    """Deterministic id for a message derived from ``parent_id``.

    A redelivered parent handled again yields the same child id, so downstream
    deduplication by message_id catches the retry.
    """
    if not all(isinstance(part, str) for part in parts):
        raise TypeError("derive_message_id parts must be strings")
    # JSON keeps the parts unambiguous: ("a b", "c") and ("a", "b c") differ.
    return uuid5(parent_id, json.dumps(list(parts), ensure_ascii=False))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _envelope_json_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The schema field's real contract is "exactly this class's id"; say so in the schema.
    schema_id = getattr(model, "SCHEMA_NAME", None) and model.schema_id()  # type: ignore[attr-defined]
    properties = schema.get("properties", {})
    if schema_id and "schema" in properties:
        properties["schema"] = {
            "const": schema_id,
            "default": schema_id,
            "title": "Schema",
            "type": "string",
            "description": "Schema id 'name/version'; must equal this message's id.",
        }


class Message(BaseModel):
    """Base of every bus message: the envelope fields plus schema identity.

    Subclasses set ``SCHEMA_NAME`` (e.g. "execution.report") and ``SCHEMA_VERSION``; the
    ``schema`` field defaults to "name/version" and a payload claiming another schema is
    refused, so a message can never be decoded as the wrong type.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        json_schema_extra=_envelope_json_schema,
        # On the wire every field is present, so the serialization schema says so.
        json_schema_serialization_defaults_required=True,
    )

    SCHEMA_NAME: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    KIND: ClassVar[MessageKind] = "event"

    message_id: UUID = Field(
        default_factory=uuid4,
        description="Unique id of this message; deterministic when derived from a parent.",
    )
    correlation_id: UUID = Field(
        default_factory=uuid4,
        description="Id shared by one candle-to-fill chain; a new chain starts with a new id.",
    )
    causation_id: UUID | None = Field(
        default=None,
        description="message_id of the message that caused this one; null at a chain's start.",
    )
    schema_: str = Field(
        default=None,  # type: ignore[assignment]  # filled by _check_schema
        alias="schema",
        validate_default=True,
        description="Schema id 'name/version'; must equal this message's id.",
    )
    source: NonEmptyStr = Field(description="Name of the agent (or tool) that produced it.")
    produced_at: UtcDatetime = Field(
        default_factory=_utc_now, description="When it was produced (UTC)."
    )

    @classmethod
    def schema_id(cls) -> str:
        """The "name/version" id of this message type, e.g. "execution.report/1"."""
        name = getattr(cls, "SCHEMA_NAME", None)
        version = getattr(cls, "SCHEMA_VERSION", None)
        if not name or not isinstance(version, int):
            raise TypeError(f"{cls.__name__} declares no SCHEMA_NAME/SCHEMA_VERSION")
        return f"{name}/{version}"

    @field_validator("schema_", mode="before")
    @classmethod
    def _check_schema(cls, value: Any) -> str:
        expected = cls.schema_id()
        if value is None:
            return expected
        if value != expected:
            raise ValueError(f"schema {value!r} is not {expected!r}")
        return expected

    @classmethod
    def caused_by(
        cls, parent: Message, *, id_parts: tuple[str, ...] = (), **fields: Any
    ) -> Self:
        """Build a message caused by ``parent``: same correlation, causation = parent.

        The message_id is derived from the parent's id, this type's schema id and
        ``id_parts``; pass parts that tell siblings apart (e.g. a strategy id when one
        snapshot yields several signals).
        """
        clash = _CHAIN_FIELDS.intersection(fields)
        if clash:
            raise TypeError(f"caused_by sets {', '.join(sorted(clash))} itself")
        return cls(
            message_id=derive_message_id(parent.message_id, cls.schema_id(), *id_parts),
            correlation_id=parent.correlation_id,
            causation_id=parent.message_id,
            **fields,
        )
