"""Bytes on the wire <-> validated messages.

Decoding has exactly one failure mode, MessageDecodeError, whatever the input: a consumer
can dead-letter on that one exception (with ``reason`` in the headers) and treat anything
else as a bug in its own handler.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import pydantic_core
from pydantic import ValidationError

from protocol.envelope import Message
from protocol.registry import MESSAGE_TYPES

__all__ = ["MAX_MESSAGE_BYTES", "MessageDecodeError", "decode", "decode_any", "encode"]

M = TypeVar("M", bound=Message)

# Far above any real message; bounds the work a hostile or corrupt payload can cause.
MAX_MESSAGE_BYTES: Final = 1_048_576
# Enough errors to diagnose; a dead-letter header should not carry thousands.
_MAX_REPORTED_ERRORS: Final = 10


class MessageDecodeError(ValueError):
    """Raised for any payload that is not a valid message; ``reason`` says why.

    ``schema`` is the schema id the payload claimed, when it got that far.
    """

    def __init__(self, reason: str, *, schema: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.schema = schema


def encode(msg: Message) -> bytes:
    """Serialise a message to UTF-8 JSON: field aliases ("schema"), Decimals as strings."""
    return msg.model_dump_json(by_alias=True).encode("utf-8")


def decode(data: bytes | str, model: type[M]) -> M:
    """Validate ``data`` as exactly ``model``; a payload of another schema is refused."""
    try:
        text = _as_text(data)
        return model.model_validate_json(text)
    except MessageDecodeError:
        raise
    except ValidationError as exc:
        raise MessageDecodeError(_describe(model.__name__, exc), schema=_claimed(data)) from None
    except Exception as exc:  # noqa: BLE001 - the contract is "only MessageDecodeError"
        raise MessageDecodeError(f"{model.__name__}: {_unexpected(exc)}") from None


def decode_any(data: bytes | str) -> Message:
    """Decode a message of any registered type, chosen by its "schema" field."""
    try:
        text = _as_text(data)
        try:
            parsed = pydantic_core.from_json(text)
        except ValueError as exc:
            raise MessageDecodeError(f"invalid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise MessageDecodeError(f"message must be a JSON object, got {_json_kind(parsed)}")
        schema = parsed.get("schema")
        if not isinstance(schema, str):
            raise MessageDecodeError('message has no "schema" string field')
        model = MESSAGE_TYPES.get(schema)
        if model is None:
            raise MessageDecodeError(f"unknown schema {schema[:100]!r}", schema=schema[:100])
    except MessageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MessageDecodeError(_unexpected(exc)) from None
    return decode(text, model)


def _as_text(data: Any) -> str:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageDecodeError(f"message is {len(raw)} bytes, limit {MAX_MESSAGE_BYTES}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageDecodeError(f"invalid UTF-8 at byte {exc.start}") from None
    if isinstance(data, str):
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageDecodeError(f"message is {len(data)} chars, limit {MAX_MESSAGE_BYTES}")
        return data
    raise MessageDecodeError(f"expected bytes or str, got {type(data).__name__}")


def _describe(model_name: str, exc: ValidationError) -> str:
    """One line per problem: "Model: field.path: what is wrong"."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        where = ".".join(str(step) for step in error["loc"])
        what = _message(error)
        parts.append(f"{where}: {what}" if where else what)
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return f"{model_name}: " + "; ".join(parts)


def _message(error: Any) -> str:
    if error["type"] == "value_error":
        # Our validators' own words, without pydantic's "Value error, " prefix.
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "json_invalid":
        return f"invalid JSON: {error.get('ctx', {}).get('error', error['msg'])}"
    return str(error["msg"])


def _claimed(data: Any) -> str | None:
    """The schema id a payload claims, for diagnostics only; never raises."""
    try:
        parsed = pydantic_core.from_json(data)
        schema = parsed.get("schema") if isinstance(parsed, dict) else None
        return schema[:100] if isinstance(schema, str) else None
    except Exception:  # noqa: BLE001
        return None


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def _unexpected(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
