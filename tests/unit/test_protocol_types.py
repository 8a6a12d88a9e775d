"""Field types and enums: conversion, normalisation and refusal messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from protocol import (
    TIMEFRAMES,
    Confidence,
    FiniteDecimal,
    Money,
    NonNegativeDecimal,
    OrderStatus,
    Price,
    Quantity,
    Side,
    SignalSide,
    Symbol,
    UtcDatetime,
    split_symbol,
    timeframe_seconds,
)


class Holder(BaseModel):
    price: Price | None = None
    quantity: Quantity | None = None
    finite: FiniteDecimal | None = None
    non_negative: NonNegativeDecimal | None = None
    money: Money | None = None
    confidence: Confidence | None = None
    at: UtcDatetime | None = None
    symbol: Symbol | None = None
    side: Side | None = None


def refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as info:
        Holder(**fields)
    return str(info.value)


@pytest.mark.parametrize("value", ["0", 0, "-1", Decimal("-0.0001"), -5.5])
def test_price_must_be_positive(value: object) -> None:
    assert "price must be > 0" in refusal(price=value)


@pytest.mark.parametrize("value", ["0", "-0.1", -3])
def test_quantity_must_be_positive(value: object) -> None:
    assert "quantity must be > 0" in refusal(quantity=value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN", "inf", float("nan"),
                                   float("inf"), Decimal("NaN"), Decimal("-Infinity")])
@pytest.mark.parametrize("field", ["price", "quantity", "finite", "non_negative", "money"])
def test_non_finite_refused(field: str, value: object) -> None:
    assert "must be a finite number" in refusal(**{field: value})


@pytest.mark.parametrize(
    "value", ["abc", "1_000", "0x10", "", "\u0661\u0662", "1e", True, [1], {"a": 1}]
)
def test_non_numbers_refused(value: object) -> None:
    assert "price" in refusal(price=value)


def test_non_negative_and_money() -> None:
    assert "value must be >= 0" in refusal(non_negative="-0.01")
    assert Holder(non_negative=0).non_negative == 0
    assert Holder(money="-12.5").money == Decimal("-12.5")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.1", Decimal("0.1")), (0.1, Decimal("0.1")), (3, Decimal(3)),
     ("12345.123456789", Decimal("12345.123456789")), (" 1.50 ", Decimal("1.50")),
     ("1e-8", Decimal("0.00000001"))],
)
def test_decimal_inputs_are_exact(raw: object, expected: Decimal) -> None:
    value = Holder(price=raw).price
    assert value == expected
    assert str(value) == str(expected)


def test_decimals_serialise_as_strings() -> None:
    holder = Holder(price="42150.25", money="-0", quantity="1E+2", finite="1E-7")
    assert holder.model_dump_json(exclude_none=True) == (
        '{"price":"42150.25","quantity":"100","finite":"0.0000001","money":"0"}'
    )
    big = Holder(finite="1.5E+40")
    assert big.model_dump_json(exclude_none=True) == '{"finite":"1' + "5" + "0" * 39 + '"}'
    assert Holder.model_validate_json(big.model_dump_json()).finite == Decimal("1.5E+40")


@pytest.mark.parametrize("value", ["1E+999", "1e-999", "9" * 61, 10**70, 1e-70])
def test_absurd_magnitudes_refused(value: object) -> None:
    assert "out of range" in refusal(finite=value)


@pytest.mark.parametrize("value", [-0.1, 1.1, "1.0001", Decimal("-0.1"), float("nan"), "x", True])
def test_confidence_range(value: object) -> None:
    assert "confidence" in refusal(confidence=value)


def test_confidence_bounds_accepted() -> None:
    assert Holder(confidence=0).confidence == 0.0
    assert Holder(confidence=Decimal("1")).confidence == 1.0


def test_naive_datetime_refused() -> None:
    assert "datetime must be timezone-aware (UTC)" in refusal(at=datetime(2024, 1, 1))
    assert "timezone-aware" in refusal(at="2024-01-01T00:00:00")


def test_datetime_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    at = Holder(at=datetime(2024, 1, 1, 2, 0, tzinfo=plus_two)).at
    assert at is not None and at.utcoffset() == timedelta(0) and at.hour == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("btc/usdt", "BTC/USDT"), ("ETH/BTC", "ETH/BTC"), ("btc/usdt:usdt", "BTC/USDT:USDT"),
     ("BTC/USDT:USDT-240329", "BTC/USDT:USDT-240329"), ("1000shib/usdt", "1000SHIB/USDT")],
)
def test_symbol_normalised(raw: str, expected: str) -> None:
    assert Holder(symbol=raw).symbol == expected


@pytest.mark.parametrize(
    "raw", ["BTCUSDT", "BTC/", "/USDT", "BTC /USDT", "BTC.X/USDT", "BTC/US*", "BTC/#", "A/B/C",
            "BTC/USDT:", "", "BTC-X/USDT"],
)
def test_symbol_refused(raw: str) -> None:
    assert "symbol must look like BASE/QUOTE" in refusal(symbol=raw)


def test_split_symbol() -> None:
    assert split_symbol("BTC/USDT") == ("BTC", "USDT", None)
    assert split_symbol("BTC/USDT:USDT-240329") == ("BTC", "USDT", "USDT")


def test_timeframes() -> None:
    assert timeframe_seconds("1s") == 1  # Binance spot serves 1-second klines
    assert timeframe_seconds("1m") == 60
    assert timeframe_seconds("4h") == 14400
    assert timeframe_seconds("1w") == 604800
    assert timeframe_seconds("1M") == 30 * 86400
    assert len(TIMEFRAMES) == 16
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_seconds("7m")


def test_enum_case_normalised_and_nonsense_refused() -> None:
    assert Holder(side="buy").side is Side.BUY
    assert Holder(side=" Sell ").side is Side.SELL
    assert Holder.model_validate_json('{"side": "buy"}').side is Side.BUY
    assert SignalSide("hold") is SignalSide.HOLD
    assert "BUY" in refusal(side="purchase")
    with pytest.raises(ValueError):
        Side("purchase")


def test_order_status_terminal() -> None:
    terminal = {s for s in OrderStatus if s.is_terminal}
    assert terminal == {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED,
                        OrderStatus.EXPIRED}
