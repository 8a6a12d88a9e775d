"""Line protocol building, escaping and InfluxQL quoting (pure functions, no service)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from infra.influx import (
    InfluxPriceStore,
    candle_line,
    escape_field_key,
    escape_measurement,
    escape_string_field,
    escape_tag,
    indicator_line,
    line,
    quote_identifier,
    quote_literal,
    read_decimal,
)
from infra.influx.lineprotocol import format_float, from_epoch_ms, rfc3339_ms, to_epoch_ms
from infra.influx.rows import candle_from_row, snapshot_from_row
from protocol import Candle, IndicatorSnapshot, Indicators

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _candle(**prices: str) -> Candle:
    values = {"open": "43000", "high": "43500.5", "low": "42900", "close": "43443.0625", "volume": "0.00012345"}
    values.update(prices)
    return Candle.closed(source="test", exchange="binance", symbol="BTC/USDT", timeframe="1m", open_time=T0, **values)


def test_escape_measurement_escapes_commas_and_spaces_only() -> None:
    assert escape_measurement("my meas,x=1") == "my\\ meas\\,x=1"


def test_escape_tag_escapes_commas_equals_and_spaces() -> None:
    assert escape_tag('BTC/USDT X,y=z"q\'') == 'BTC/USDT\\ X\\,y\\=z"q\''
    assert escape_field_key("a b=c,d") == "a\\ b\\=c\\,d"


@pytest.mark.parametrize("bad", ["", "a\\b", "trailing\\", "new\nline"])
def test_unportable_tags_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        escape_tag(bad)
    with pytest.raises(ValueError):
        escape_measurement(bad)


def test_string_field_escapes_backslash_before_quote() -> None:
    assert escape_string_field('a\\b"c') == '"a\\\\b\\"c"'
    with pytest.raises(ValueError):
        escape_string_field("x\ny")


def test_line_sorts_tags_and_types_fields() -> None:
    text = line("m", {"z": "1", "a": "2"}, {"f": Decimal("1.5"), "i": 3, "b": True, "s": "x"}, 1000)
    assert text == 'm,a=2,z=1 f=1.5,i=3i,b=true,s="x" 1000'
    with pytest.raises(ValueError):
        line("m", {}, {}, 1)


def test_candle_line_layout() -> None:
    text = candle_line(_candle())
    assert text == (
        "candle,exchange=binance,symbol=BTC/USDT,timeframe=1m "
        "open=43000.0,high=43500.5,low=42900.0,close=43443.0625,volume=0.00012345 1709294400000"
    )


def test_indicator_line_writes_non_null_fields_and_always_close() -> None:
    candle = _candle()
    warm = IndicatorSnapshot.caused_by(
        candle, source="test", exchange="binance", symbol="BTC/USDT", timeframe="1m",
        candle_time=T0, close=candle.close, indicators=Indicators(),
    )
    assert indicator_line(warm) == "indicators,exchange=binance,symbol=BTC/USDT,timeframe=1m close=43443.0625 1709294400000"
    partial = warm.model_copy(update={"indicators": Indicators(rsi=Decimal("27.5"), macd=Decimal("-12.25"))})
    assert indicator_line(partial).split(" ")[1] == "close=43443.0625,rsi=27.5,macd=-12.25"


def test_float_formatting_and_exact_read_back() -> None:
    for text in ["43443.0625", "0.00012345", "0.1", "123456789.012345", "1E-8", "99999999999999.9"]:
        value = Decimal(text)
        assert read_decimal(float(format_float(value))) == value
    assert read_decimal(43443) == Decimal(43443)
    with pytest.raises(ValueError):
        format_float(Decimal("NaN"))
    with pytest.raises(ValueError):
        read_decimal(None)  # type: ignore[arg-type]


def test_epoch_ms_conversions_are_exact_and_refuse_sub_ms() -> None:
    moment = T0 + timedelta(milliseconds=7)
    assert from_epoch_ms(to_epoch_ms(moment)) == moment
    assert rfc3339_ms(moment) == "2024-03-01T12:00:00.007Z"
    with pytest.raises(ValueError):
        to_epoch_ms(T0 + timedelta(microseconds=1))
    with pytest.raises(ValueError):
        to_epoch_ms(datetime(2024, 1, 1))


def test_influxql_quoting() -> None:
    assert quote_literal("it's a\\b") == "'it\\'s a\\\\b'"
    assert quote_literal("a\nb") == "'a\\nb'"
    assert quote_identifier('we"ird\\name') == '"we\\"ird\\\\name"'


def test_rows_rebuild_messages_with_original_ids() -> None:
    candle = _candle()
    row = {"time": to_epoch_ms(T0), "open": 43000, "high": 43500.5, "low": 42900.0, "close": 43443.0625, "volume": 0.00012345}
    back = candle_from_row(row, "BINANCE", "btc/usdt", "1m")
    assert back.message_id == candle.message_id and back.correlation_id == candle.correlation_id
    assert (back.open, back.close, back.volume) == (candle.open, candle.close, candle.volume)
    snapshot = IndicatorSnapshot.caused_by(
        candle, source="test", exchange="binance", symbol="BTC/USDT", timeframe="1m",
        candle_time=T0, close=candle.close, indicators=Indicators(rsi=Decimal("27.5")),
    )
    snap_row = {"time": to_epoch_ms(T0), "close": 43443.0625, "rsi": 27.5, "macd": None, "exchange": "binance"}
    rebuilt = snapshot_from_row(snap_row, "binance", "BTC/USDT", "1m")
    assert rebuilt.message_id == snapshot.message_id and rebuilt.causation_id == candle.message_id
    assert rebuilt.indicators == snapshot.indicators


async def test_repr_hides_the_token() -> None:
    async with InfluxPriceStore("http://127.0.0.1:1", "db", token="s3cret-token") as store:
        assert "s3cret" not in repr(store)
        assert "***" in repr(store)
