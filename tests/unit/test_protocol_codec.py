"""Wire codec: exact round trips, and MessageDecodeError as the only failure mode."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    MESSAGE_TYPES,
    Candle,
    ExecutionReport,
    Message,
    MessageDecodeError,
    decode,
    decode_any,
    encode,
)
from protocol.codec import MAX_MESSAGE_BYTES
from tests.unit.test_protocol_samples import candle_fields, report_fields, sample

ALL_TYPES = list(MESSAGE_TYPES.values())
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("cls", ALL_TYPES, ids=list(MESSAGE_TYPES))
def test_round_trip(cls: type[Message]) -> None:
    msg = sample(cls)
    wire = encode(msg)
    assert decode(wire, cls) == msg
    assert decode_any(wire) == msg
    assert decode(wire.decode("utf-8"), cls) == msg
    assert type(decode_any(wire)) is cls
    assert json.loads(wire)["schema"] == cls.schema_id()


def test_decimals_exact_and_strings_on_the_wire() -> None:
    candle = Candle(**candle_fields(open="0.1", high="12345.123456789", low="0.1", close="0.10",
                                     volume="0.000000010"))
    wire = json.loads(encode(candle))
    assert wire["open"] == "0.1"
    assert wire["high"] == "12345.123456789"
    assert wire["close"] == "0.10"
    assert wire["volume"] == "0.000000010"
    back = decode(encode(candle), Candle)
    assert back.high == Decimal("12345.123456789") and back.volume == Decimal("0.000000010")
    assert str(back.close) == "0.10"


def test_float_input_on_the_wire_is_read_via_str() -> None:
    data = json.loads(encode(sample(Candle)))
    data |= {"open": 0.1, "low": 0.1, "high": 0.3, "close": 0.2}
    assert decode(json.dumps(data), Candle).open == Decimal("0.1")


def reason_of(data: Any, model: type[Message] | None = None) -> str:
    with pytest.raises(MessageDecodeError) as info:
        decode_any(data) if model is None else decode(data, model)
    assert isinstance(info.value, ValueError)
    return info.value.reason


def test_reason_names_model_field_and_problem() -> None:
    data = json.loads(encode(sample(ExecutionReport)))
    data["cumulative_filled_quantity"] = "0.4"
    expected = "ExecutionReport: cumulative_filled_quantity: must be <= quantity"
    assert reason_of(json.dumps(data)) == expected
    assert reason_of(json.dumps(data), ExecutionReport) == expected


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"{}", 'no "schema"'),
        (b'{"schema": "nope/9"}', "unknown schema 'nope/9'"),
        (b"[" * 100_000, "JSON"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "limit"),
    ],
)
def test_decode_any_refusals(payload: bytes, fragment: str) -> None:
    assert fragment in reason_of(payload)


def test_decode_refusals() -> None:
    data = json.loads(encode(sample(Candle)))
    assert "schema 'market.candle/1' is not 'execution.report/1'" in reason_of(
        json.dumps(data), ExecutionReport
    )
    assert "colour: unknown field" in reason_of(json.dumps(data | {"colour": 1}), Candle)
    assert "high must be >= low" in reason_of(json.dumps(data | {"low": "99999"}), Candle)
    assert "price must be a finite number" in reason_of(json.dumps(data | {"open": "NaN"}), Candle)
    assert "price must be a finite number" in reason_of(
        json.dumps(data | {"open": float("nan")}), Candle
    )
    assert "timezone-aware" in reason_of(
        json.dumps(data | {"open_time": "2024-01-01T00:00:00"}), Candle
    )
    assert "invalid JSON" in reason_of(b"[" * 100_000, Candle)
    assert "expected bytes or str" in reason_of(12, Candle)  # type: ignore[arg-type]


def test_many_errors_are_capped() -> None:
    data = {"schema": "execution.report/1"} | {f"x{i}": i for i in range(50)}
    reason = reason_of(json.dumps(data))
    assert "more" in reason and len(reason) < 2000


# ------------------------------------------------------------------ property tests

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def _only_decode_errors(payload: bytes | str, model: type[Message] | None = None) -> None:
    try:
        decode_any(payload) if model is None else decode(payload, model)
    except MessageDecodeError:
        pass


@FAST
@given(json_values)
def test_arbitrary_json_raises_only_decode_errors(value: Any) -> None:
    payload = json.dumps(value)
    _only_decode_errors(payload)
    _only_decode_errors(payload, Candle)


@FAST
@given(
    st.sampled_from(sorted(MESSAGE_TYPES)),
    st.dictionaries(st.text(max_size=30), json_values, max_size=8),
)
def test_arbitrary_objects_with_valid_schema(schema: str, body: dict[str, Any]) -> None:
    payload = json.dumps(body | {"schema": schema})
    _only_decode_errors(payload)
    _only_decode_errors(payload, Candle)


@FAST
@given(st.sampled_from(ALL_TYPES), st.data())
def test_mutated_valid_messages(cls: type[Message], data: st.DataObject) -> None:
    body = json.loads(encode(sample(cls)))
    field = data.draw(st.sampled_from(sorted(body)))
    body[field] = data.draw(json_values)
    payload = json.dumps(body)
    _only_decode_errors(payload)
    _only_decode_errors(payload, cls)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_errors(payload: bytes) -> None:
    _only_decode_errors(payload)
    _only_decode_errors(payload, ExecutionReport)


@pytest.mark.parametrize("opener", ["[", "{\"a\":", "{\"schema\":\"market.candle/1\",\"x\":["])
def test_deep_nesting(opener: str) -> None:
    payload = opener * 100_000
    _only_decode_errors(payload)
    _only_decode_errors(payload, Candle)
    closed = '{"schema":"agent.heartbeat/1","detail":' + "[" * 5000 + "]" * 5000 + "}"
    _only_decode_errors(closed)


def test_report_fields_helper_is_valid() -> None:
    assert ExecutionReport(**report_fields()).fee_currency == "USDT"
