"""The pure indicator functions against TA-Lib called directly on real BTC candles, the session
VWAP against a hand computation, and the float -> Decimal -> float round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from pydantic import ValidationError

from agents.technical_analysis.indicators import (
    COLUMNS,
    IndicatorParams,
    compute_columns,
    epoch_ms,
    indicators_at,
    rolling_columns,
    to_decimal,
)
from protocol import IndicatorSnapshot, Indicators, decode, encode
from tests.unit.technical_analysis.reference import Series
from tests.unit.technical_analysis.reference import talib_direct, vwap_by_hand

DEFAULT = IndicatorParams()


def test_columns_are_exactly_the_protocol_indicator_fields(btc: Series) -> None:
    columns = compute_columns(*btc.columns(0, 200), DEFAULT)
    assert tuple(columns) == tuple(Indicators.model_fields) == COLUMNS
    assert all(col.dtype == np.float64 and len(col) == 200 for col in columns.values())


def test_every_talib_column_equals_talib_called_directly_on_real_btc_candles(btc: Series) -> None:
    columns = compute_columns(*btc.columns(), DEFAULT)
    expected = talib_direct(btc, DEFAULT)
    for name, values in expected.items():
        # assert_array_equal treats NaN == NaN: warm-up nulls must sit at the same rows.
        np.testing.assert_array_equal(columns[name], values, err_msg=name)
    lookbacks = DEFAULT.lookbacks()
    assert np.isnan(columns["sma_slow"][: lookbacks["sma_slow"]]).all()
    assert not np.isnan(columns["sma_slow"][lookbacks["sma_slow"]])
    assert np.isnan(columns["adx"]).sum() == lookbacks["adx"] == 27
    # After the longest warm-up everything TA-Lib gives is a number (the data has no flat bands).
    for name in expected:
        assert not np.isnan(columns[name][DEFAULT.max_lookback :]).any(), name


def test_other_periods_are_passed_to_talib(btc: Series) -> None:
    params = IndicatorParams(rsi_period=7, macd_fast=5, macd_slow=35, macd_signal=5, bb_period=10, bb_stddev=1.5,
                             sma_fast=5, sma_slow=100, ema_fast=3, ema_slow=60, atr_period=5, adx_period=7,
                             stoch_fastk=5, stoch_slowk=2, stoch_slowd=4, window=200)
    columns = compute_columns(*btc.columns(0, 600), params)
    expected = talib_direct(Series(btc.candles[:600], *btc.columns(0, 600)), params)
    for name, values in expected.items():
        np.testing.assert_array_equal(columns[name], values, err_msg=name)


def test_row_i_depends_only_on_rows_up_to_i(btc: Series) -> None:
    t, o, h, lo, c, v = (a.copy() for a in btc.columns(0, 400))
    before = compute_columns(t, o, h, lo, c, v, DEFAULT)
    h[300:] *= 1.5
    c[300:] *= 1.2
    v[300:] = 0
    after = compute_columns(t, o, h, lo, c, v, DEFAULT)
    for name in COLUMNS:
        np.testing.assert_array_equal(before[name][:300], after[name][:300], err_msg=name)
        assert not np.array_equal(before[name][300:], after[name][300:]), name


def test_flat_bands_give_null_percent_b_and_bandwidth_not_a_division_by_zero() -> None:
    n = 60
    t = np.arange(n, dtype=np.int64) * 900_000
    flat = np.full(n, 100.0)
    columns = compute_columns(t, flat, flat, flat, flat, np.ones(n), DEFAULT)
    assert (columns["bb_upper"][19:] == columns["bb_lower"][19:]).all()
    assert np.isnan(columns["bb_percent_b"]).all()
    assert (columns["bb_bandwidth"][19:] == 0).all()


# ----------------------------------------------------------------------------- session VWAP

def _crafted(start: datetime, hours: list[int], highs: list[float], lows: list[float], closes: list[float],
             volumes: list[float]) -> dict[str, np.ndarray]:
    times = epoch_ms([start + timedelta(hours=h) for h in hours])
    return compute_columns(times, np.array(closes), np.array(highs), np.array(lows), np.array(closes),
                           np.array(volumes), DEFAULT)


def test_vwap_is_a_session_vwap_reset_at_midnight_utc_matching_a_hand_computation() -> None:
    day = datetime(2021, 10, 1, tzinfo=UTC)
    hours = [0, 6, 12, 18, 24, 30, 36]
    highs = [12.0, 15.0, 9.0, 30.0, 21.0, 40.0, 10.0]
    lows = [9.0, 12.0, 6.0, 24.0, 18.0, 35.0, 7.0]
    closes = [9.0, 12.0, 6.0, 27.0, 21.0, 35.0, 10.0]
    volumes = [0.0, 2.0, 1.0, 3.0, 1.0, 0.0, 4.0]
    vwap = _crafted(day, hours, highs, lows, closes, volumes)["vwap"]
    tp = [(h + lo + c) / 3 for h, lo, c in zip(highs, lows, closes, strict=True)]  # 10, 13, 7, 27, 20, 110/3, 9
    assert np.isnan(vwap[0])  # nothing traded yet this session
    assert vwap[1] == pytest.approx(13.0, rel=1e-15)
    assert vwap[2] == pytest.approx((13 * 2 + 7 * 1) / 3, rel=1e-15)
    assert vwap[3] == pytest.approx((13 * 2 + 7 + 27 * 3) / 6, rel=1e-15)
    # 00:00 UTC the next day: a new session, the previous day's volume is forgotten.
    assert vwap[4] == pytest.approx(tp[4], rel=1e-15)
    assert vwap[5] == pytest.approx(tp[4], rel=1e-15)  # a zero-volume bar moves nothing
    assert vwap[6] == pytest.approx((20 * 1 + 9 * 4) / 5, rel=1e-15)


def test_vwap_is_null_for_a_session_that_began_before_the_data() -> None:
    start = datetime(2021, 10, 1, 6, tzinfo=UTC)  # 06:00: the first session is seen in part
    vwap = _crafted(start, [0, 6, 12, 18, 24], [2.0] * 5, [1.0] * 5, [1.5] * 5, [1.0] * 5)["vwap"]
    assert np.isnan(vwap[:3]).all()
    assert vwap[3] == vwap[4] == pytest.approx(1.5)


def test_vwap_equals_a_candle_by_candle_hand_computation_on_real_candles(btc: Series) -> None:
    np.testing.assert_array_equal(compute_columns(*btc.columns(), DEFAULT)["vwap"], vwap_by_hand(btc))


def test_vwap_of_a_session_does_not_depend_on_earlier_candles(btc: Series) -> None:
    full = compute_columns(*btc.columns(), DEFAULT)["vwap"]
    midnights = np.flatnonzero(btc.open_time % 86_400_000 == 0)
    start = int(midnights[20])
    part = compute_columns(*btc.columns(start), DEFAULT)["vwap"]
    np.testing.assert_array_equal(part, full[start:])
    # And the real data has zero-volume sessions starts: null until something trades.
    assert np.isnan(full).sum() > midnights[0]


# ----------------------------------------------------------------------------- rolling windows

def test_rolling_columns_are_the_last_rows_of_each_window(btc: Series) -> None:
    params = IndicatorParams(window=120)
    n = 400
    rolled = rolling_columns(*btc.columns(0, n), params)
    head = compute_columns(*btc.columns(0, params.window), params)
    for name in COLUMNS:
        np.testing.assert_array_equal(rolled[name][: params.window], head[name], err_msg=name)
    for i in (120, 121, 250, n - 1):
        window = compute_columns(*btc.columns(i - params.window + 1, i + 1), params)
        for name in COLUMNS:
            np.testing.assert_array_equal(rolled[name][i], window[name][-1], err_msg=f"{name}[{i}]")


# ----------------------------------------------------------------------------- validation

def test_inputs_are_checked() -> None:
    t = np.array([0, 900_000, 900_000], dtype=np.int64)
    ones = np.ones(3)
    with pytest.raises(ValueError, match="strictly increasing"):
        compute_columns(t, ones, ones, ones, ones, ones, DEFAULT)
    with pytest.raises(ValueError, match="1-d column of 2"):
        compute_columns(t[:2], ones, ones[:2], ones[:2], ones[:2], ones[:2], DEFAULT)
    assert all(len(c) == 0 for c in compute_columns(t[:0], *(ones[:0],) * 5, DEFAULT).values())


def test_open_times_accept_datetimes_datetime64_and_epoch_ms() -> None:
    moments = [datetime(2021, 9, 1, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(3)]
    expected = epoch_ms(np.array([1630454400000, 1630455300000, 1630456200000]))
    np.testing.assert_array_equal(epoch_ms(moments), expected)
    np.testing.assert_array_equal(epoch_ms(np.array(["2021-09-01T00:00", "2021-09-01T00:15", "2021-09-01T00:30"],
                                                    dtype="datetime64[s]")), expected)
    with pytest.raises(ValueError, match="timezone-aware"):
        epoch_ms([datetime(2021, 9, 1)])


def test_params_defaults_and_refusals() -> None:
    assert (DEFAULT.rsi_period, DEFAULT.macd_fast, DEFAULT.macd_slow, DEFAULT.macd_signal) == (14, 12, 26, 9)
    assert (DEFAULT.bb_period, DEFAULT.bb_stddev, DEFAULT.sma_fast, DEFAULT.sma_slow) == (20, 2.0, 20, 50)
    assert (DEFAULT.ema_fast, DEFAULT.ema_slow, DEFAULT.atr_period, DEFAULT.adx_period) == (12, 26, 14, 14)
    assert (DEFAULT.stoch_fastk, DEFAULT.stoch_slowk, DEFAULT.stoch_slowd, DEFAULT.window) == (14, 3, 3, 500)
    assert DEFAULT.max_lookback == 49  # SMA 50
    with pytest.raises(ValidationError):
        DEFAULT.rsi_period = 3  # type: ignore[misc]  # frozen
    with pytest.raises(ValidationError, match="window .49. must exceed the longest indicator warm-up .49"):
        IndicatorParams(window=49)
    IndicatorParams(window=50)
    with pytest.raises(ValidationError, match="macd_fast .26. must be < macd_slow .26."):
        IndicatorParams(macd_fast=26)
    with pytest.raises(ValidationError, match="ema_fast"):
        IndicatorParams(ema_fast=30)
    with pytest.raises(ValidationError, match="window .* warm-up .99"):
        IndicatorParams(sma_slow=100, window=99)
    with pytest.raises(ValidationError):
        IndicatorParams(bb_stddev=0)
    with pytest.raises(ValidationError):
        IndicatorParams(unknown=1)  # type: ignore[call-arg]


# ----------------------------------------------------------------------------- Decimal round trip

def test_indicators_at_round_trips_every_value_exactly_through_the_wire(btc: Series) -> None:
    columns = compute_columns(*btc.columns(0, 1500), DEFAULT)
    candle = btc.candles[0]
    for i in range(0, 1500, 7):
        indicators = indicators_at(columns, i)
        snapshot = IndicatorSnapshot.caused_by(
            candle, source="test", exchange="binance", symbol="BTC/USDT", timeframe="15m",
            candle_time=candle.open_time, close=candle.close, indicators=indicators,
        )
        received = decode(encode(snapshot), IndicatorSnapshot).indicators
        for name in COLUMNS:
            value, sent = columns[name][i], getattr(received, name)
            if np.isnan(value):
                assert sent is None, (name, i)
            else:
                assert float(sent) == value, (name, i)  # bit-identical float after the trip
    warm = indicators_at(columns, 0)
    assert warm.obv is not None and warm.rsi is None and warm.sma_slow is None


def test_to_decimal_edges() -> None:
    assert to_decimal(float("nan")) is None
    assert to_decimal(float("inf")) is None and to_decimal(float("-inf")) is None
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(np.float64(1e-300)) == 0  # noise beyond the protocol's exponent range
    assert float(to_decimal(1.2345678901234567e-05)) == 1.2345678901234567e-05  # type: ignore[arg-type]
    Indicators(rsi=to_decimal(-1.7976931348623157e-30))  # accepted by the protocol
