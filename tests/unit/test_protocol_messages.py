"""Message models: envelope rules, cross-field refusals, immutability, derivation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from protocol import (
    MESSAGE_TYPES,
    Candle,
    ExecutionReport,
    IndicatorSnapshot,
    Indicators,
    Message,
    OrderRequest,
    OrderStatus,
    PositionUpdate,
    Side,
    Signal,
    client_order_id_for,
    derive_message_id,
)
from tests.unit.test_protocol_samples import (
    SIGNAL_ID,
    T0,
    candle_fields,
    order_fields,
    report_fields,
    sample,
)


def refusal(cls: type[Message], fields: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        cls(**fields)
    return str(info.value)


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=list(MESSAGE_TYPES))
def test_schema_defaults_to_class_id_and_is_frozen(cls: type[Message]) -> None:
    msg = sample(cls)
    assert msg.schema_ == cls.schema_id()
    assert msg.model_dump(by_alias=True)["schema"] == cls.schema_id()
    with pytest.raises(ValidationError, match="frozen"):
        msg.source = "someone-else"  # type: ignore[misc]


def test_wrong_schema_refused() -> None:
    assert "is not 'market.candle/1'" in refusal(Candle, candle_fields(schema="market.gap/1"))
    assert "is not 'market.candle/1'" in refusal(Candle, candle_fields(schema="market.candle/2"))


def test_unknown_field_refused() -> None:
    assert "Extra inputs are not permitted" in refusal(Candle, candle_fields(colour="red"))


def test_source_required_and_non_empty() -> None:
    fields = candle_fields()
    del fields["source"]
    assert "source" in refusal(Candle, fields)
    assert "must not be empty" in refusal(Candle, candle_fields(source="  "))


def test_candle_normalises_exchange_and_symbol() -> None:
    candle = Candle(**candle_fields(exchange="Binance", symbol="btc/usdt"))
    assert (candle.exchange, candle.symbol) == ("binance", "BTC/USDT")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"high": "41000", "low": "41500"}, "high must be >= low"),
        ({"high": "41000"}, "high must be >= open"),
        ({"low": "42050"}, "low must be <= open"),
        ({"close": "43000"}, "high must be >= close"),
        ({"close": "41000"}, "low must be <= close"),
        ({"open": "0"}, "price must be > 0"),
        ({"low": "-1"}, "price must be > 0"),
        ({"volume": "-1"}, "value must be >= 0"),
        ({"close_time": T0}, "close_time must be > open_time"),
        ({"close": "NaN"}, "finite"),
        ({"timeframe": "7m"}, "timeframe"),
    ],
)
def test_candle_refusals(overrides: dict[str, Any], problem: str) -> None:
    assert problem in refusal(Candle, candle_fields(**overrides))


def test_order_limit_and_market_prices() -> None:
    no_price = order_fields(limit_price=None)
    assert "limit_price is required for a LIMIT order" in refusal(OrderRequest, no_price)
    market_with_price = order_fields(order_type="market")
    assert "must be null for a MARKET order" in refusal(OrderRequest, market_with_price)
    market = OrderRequest(**order_fields(order_type="market", limit_price=None))
    assert market.limit_price is None and market.side is Side.BUY


def test_order_refusals() -> None:
    assert "quantity must be > 0" in refusal(OrderRequest, order_fields(quantity="0"))
    assert "quantity must be > 0" in refusal(OrderRequest, order_fields(quantity="-1"))
    assert "client_order_id_for(signal_id)" in refusal(
        OrderRequest, order_fields(client_order_id="tb-other")
    )
    assert "client_order_id must be 1-36" in refusal(
        OrderRequest, order_fields(client_order_id="x" * 37)
    )
    assert "reserves USDT, not BTC" in refusal(OrderRequest, order_fields(reserved_asset="BTC"))
    sell = OrderRequest(**order_fields(side="sell", reserved_asset="btc"))
    assert sell.reserved_asset == "BTC"
    assert "Input should be 'BUY' or 'SELL'" in refusal(OrderRequest, order_fields(side="HOLD"))


def test_client_order_id_is_deterministic_and_short() -> None:
    assert client_order_id_for(SIGNAL_ID) == client_order_id_for(UUID(str(SIGNAL_ID)))
    assert client_order_id_for(SIGNAL_ID) != client_order_id_for(uuid4())
    assert len(client_order_id_for(SIGNAL_ID)) <= 36


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"cumulative_filled_quantity": "0.4"}, "cumulative_filled_quantity\n  Value error, must be <= quantity"),
        ({"status": "FILLED"}, "must equal quantity when status is FILLED"),
        ({"status": "NEW"}, "must be 0 when status is NEW"),
        ({"cumulative_filled_quantity": "0.3"}, "< quantity when status is PARTIALLY_FILLED"),
        ({"last_fill_quantity": "0.2"}, "must be <= cumulative_filled_quantity"),
        ({"last_fill_price": None}, "required when last_fill_quantity > 0"),
        ({"average_price": None}, "required when cumulative_filled_quantity > 0"),
        ({"fee_currency": None}, "fee_currency is required when fee > 0"),
        ({"fee": "-0.1"}, "value must be >= 0"),
        ({"event_time": T0.replace(tzinfo=None)}, "timezone-aware"),
    ],
)
def test_execution_report_refusals(overrides: dict[str, Any], problem: str) -> None:
    assert problem in refusal(ExecutionReport, report_fields(**overrides))


def test_execution_report_states() -> None:
    filled = ExecutionReport(**report_fields(status="filled", cumulative_filled_quantity="0.3"))
    assert filled.status is OrderStatus.FILLED
    new = ExecutionReport(
        **report_fields(status="NEW", cumulative_filled_quantity=0, last_fill_quantity=0,
                        last_fill_price=None, average_price=None, fee=0, fee_currency=None)
    )
    assert new.cumulative_filled_quantity == 0
    assert "must be null unless last_fill_quantity > 0" in refusal(
        ExecutionReport,
        report_fields(last_fill_quantity=0, fee=0),
    )


def test_position_update_rules() -> None:
    base = sample(PositionUpdate).model_dump(exclude={"message_id", "schema_"})
    flat = PositionUpdate(**(base | {"quantity": 0, "average_entry_price": None}))
    assert flat.quantity == 0
    assert "required when quantity is not 0" in refusal(
        PositionUpdate, base | {"average_entry_price": None}
    )
    assert "needs mark_price" in refusal(PositionUpdate, base | {"mark_price": None})


def test_indicators_allow_warmup_and_refuse_nan() -> None:
    assert Indicators().rsi is None
    with pytest.raises(ValidationError, match="finite"):
        Indicators(rsi="NaN")
    with pytest.raises(ValidationError, match="Extra inputs"):
        Indicators(rsii=Decimal(1))


def test_signal_refusals() -> None:
    good = sample(Signal).model_dump(exclude={"message_id", "schema_"})
    assert "confidence must be between 0 and 1" in refusal(Signal, good | {"confidence": 1.1})
    assert "confidence must be between 0 and 1" in refusal(Signal, good | {"confidence": -0.1})
    assert "strategy_id must match" in refusal(Signal, good | {"strategy_id": "RSI BTC"})
    assert "finite" in refusal(Signal, good | {"indicators": {"rsi": float("inf")}})


def test_caused_by_inherits_correlation_and_is_deterministic() -> None:
    candle = sample(Candle)
    fields = {
        "source": "technical_analysis", "exchange": "binance", "symbol": "BTC/USDT",
        "timeframe": "1m", "candle_time": T0, "close": Decimal("1"), "indicators": Indicators(),
    }
    first = IndicatorSnapshot.caused_by(candle, **fields)
    again = IndicatorSnapshot.caused_by(candle, **fields)
    other = IndicatorSnapshot.caused_by(candle, id_parts=("b",), **fields)
    assert first.message_id == again.message_id != other.message_id
    assert first.correlation_id == candle.correlation_id
    assert first.causation_id == candle.message_id
    assert first.message_id == derive_message_id(candle.message_id, IndicatorSnapshot.schema_id())
    with pytest.raises(TypeError, match="correlation_id"):
        IndicatorSnapshot.caused_by(candle, correlation_id=uuid4(), **fields)


def test_derive_message_id_parts_are_unambiguous() -> None:
    parent = uuid4()
    assert derive_message_id(parent, "a b", "c") != derive_message_id(parent, "a", "b c")
    assert derive_message_id(parent, "x") == derive_message_id(parent, "x")
    assert derive_message_id(parent, "x") != derive_message_id(uuid4(), "x")


def test_new_chain_gets_fresh_ids_and_utc_time() -> None:
    a, b = sample(Candle), sample(Candle)
    assert a.message_id != b.message_id and a.correlation_id != b.correlation_id
    assert a.causation_id is None
    assert a.produced_at.utcoffset() == timedelta(0)


def test_base_message_has_no_schema() -> None:
    with pytest.raises(TypeError, match="SCHEMA_NAME"):
        Message.schema_id()


def test_closed_candle_ids_are_deterministic_per_series_and_time() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from protocol import Candle, candle_id

    prices = {"open": Decimal("1"), "high": Decimal("2"), "low": Decimal("0.5"), "close": Decimal("1.5"), "volume": Decimal("3")}
    t = datetime(2021, 9, 27, 13, 45, tzinfo=UTC)
    a = Candle.closed(source="a", exchange="binance", symbol="BTC/USDT", timeframe="15m", open_time=t, **prices)
    b = Candle.closed(source="b", exchange="binance", symbol="BTC/USDT", timeframe="15m", open_time=t, **prices)
    other = Candle.closed(source="a", exchange="binance", symbol="ETH/USDT", timeframe="15m", open_time=t, **prices)
    assert a.message_id == b.message_id == a.correlation_id == candle_id("binance", "BTC/USDT", "15m", t)
    assert other.message_id != a.message_id
    assert a.close_time == datetime(2021, 9, 27, 14, 0, tzinfo=UTC)
