"""The pipeline benchmark's pure parts: percentiles, the backlog verdict, chain tracing."""

from __future__ import annotations

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from protocol import (
    Candle,
    ExecutionReport,
    IndicatorSnapshot,
    Indicators,
    OrderRequest,
    Signal,
    client_order_id_for,
)
from tests.unit.test_protocol_samples import T0, candle_fields, order_fields, report_fields


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "scripts" / "bench_pipeline.py"
    spec = importlib.util.spec_from_file_location("bench_pipeline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


bench = _load()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert bench.percentile(values, 0.5) == 51.0  # rank round(0.5 * 99) = 50 (0-based)
    assert bench.percentile(values, 0.99) == 99.0
    assert bench.percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        bench.percentile([], 0.5)


def test_backlog_that_stays_level_is_bounded_and_one_that_keeps_rising_is_not() -> None:
    level = [(float(t), 10 + t % 3) for t in range(20)]
    trend = bench.backlog_trend(level, max_backlog=20)
    assert trend.bounded
    assert trend.first.deepest == 12 and trend.second.deepest == 12

    rising = [(float(t), 2 * t) for t in range(20)]  # half means 9 and 29
    assert not bench.backlog_trend(rising, max_backlog=20).bounded
    # A rise small against the replay's backlog window is noise, not growth.
    assert bench.backlog_trend(rising, max_backlog=80).bounded
    # Lock-step (MAX_BACKLOG 1): a mean under one message deeper is no trend, two messages are.
    assert bench.backlog_trend([(0.0, 1), (1.0, 1), (2.0, 2), (3.0, 1)], max_backlog=1).bounded
    assert not bench.backlog_trend([(0.0, 0), (1.0, 1), (2.0, 3), (3.0, 3)], max_backlog=1).bounded


def _chain_messages() -> tuple[Candle, IndicatorSnapshot, Signal, OrderRequest, ExecutionReport]:
    candle = Candle.closed(**{k: v for k, v in candle_fields().items() if k != "close_time"})
    snapshot = IndicatorSnapshot.caused_by(
        candle, source="technical_analysis", exchange="binance", symbol="BTC/USDT", timeframe="1m",
        candle_time=T0, close=Decimal("42100.5"), indicators=Indicators(rsi=Decimal("28")),
    )
    signal = Signal.caused_by(
        snapshot, id_parts=("rsi-btc",), source="strategy", strategy_id="rsi-btc", strategy="rsi",
        exchange="binance", symbol="BTC/USDT", timeframe="1m", side="BUY", confidence=0.75, reason="RSI 28 < 30",
        indicators={"rsi": Decimal("28")}, candle_time=T0, price=Decimal("42100.5"),
    )
    coid = client_order_id_for(signal.message_id)
    order = OrderRequest.caused_by(signal, **order_fields(signal_id=signal.message_id, client_order_id=coid))
    report = ExecutionReport.caused_by(order, id_parts=("0",), **report_fields(client_order_id=coid))
    return candle, snapshot, signal, order, report


def test_a_report_traced_to_its_candle_gives_one_latency_split_by_stage() -> None:
    candle, snapshot, signal, order, report = _chain_messages()
    fields = report_fields(client_order_id=order.client_order_id, cumulative_filled_quantity=Decimal("0.2"))
    second = ExecutionReport.caused_by(order, id_parts=("1",), **fields)
    chain = bench.Chain()
    for at, message in enumerate((candle, snapshot, signal, order, report, report, second)):
        chain.record(message, float(at) * 10)

    assert chain.breaks == []
    assert chain.latencies == [40.0]  # the order's first report only; the duplicate and the second add none
    assert chain.stages == {"technical_analysis": [10.0], "strategy": [10.0], "risk_manager": [10.0],
                            "execution": [10.0]}
    assert chain.candles == 1 and chain.distinct["ExecutionReport"] == 2
    assert (chain.first_candle, chain.last_event) == (0.0, 60.0)


def test_a_report_whose_order_was_not_seen_is_a_break_not_a_sample() -> None:
    candle, snapshot, signal, _, report = _chain_messages()
    chain = bench.Chain()
    for at, message in enumerate((candle, snapshot, signal, report)):
        chain.record(message, float(at))

    assert chain.latencies == []
    assert len(chain.breaks) == 1 and "expected a OrderRequest" in chain.breaks[0]


def test_a_message_naming_a_parent_of_another_chain_is_a_break() -> None:
    candle, snapshot, *_ = _chain_messages()
    other = Candle.closed(**{k: v for k, v in candle_fields(open_time=T0.replace(hour=13)).items()
                             if k != "close_time"})
    stray = IndicatorSnapshot(**{**snapshot.model_dump(), "correlation_id": other.message_id})
    chain = bench.Chain()
    for at, message in enumerate((candle, other, stray)):
        chain.record(message, float(at))

    assert len(chain.breaks) == 1 and f"Candle of chain {candle.message_id}" in chain.breaks[0]
