"""The five agents as separate OS processes replaying real BTC candles to the end.

Assertions are on end state: what the stores hold and the queues contain, compared with the
same strategies run in process, and checked by the reality check. The runs disturbed by
killed agents and restarted stores are in test_chaos.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agents.monitor.reality_check import CheckOptions, run_checks
from infra.influx import InfluxPriceStore
from tests.support.chaos import (
    assert_books_are_clean,
    assert_reality_check_passes,
    count,
    remember_undisturbed,
    replay_to_end,
    settings_of,
)
from tests.support.pipeline import expected_signals
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import COUNT, replay_slice

pytestmark = pytest.mark.system


async def test_a_replayed_slice_trades_to_a_clean_end_equal_to_the_in_process_strategies(
    make_system: Callable[..., Any], probe: QueueProbe
) -> None:
    run: SystemRun = await make_system()
    state = await replay_to_end(run, probe)

    assert state.candles == COUNT
    async with InfluxPriceStore(run.env["INFLUXDB_URL"], run.env["INFLUXDB_DATABASE"]) as store:
        snapshots = await store.query('SELECT count("close") FROM "indicators"')
    assert snapshots and snapshots[0]["count"] == COUNT

    expected = {str(s.message_id): (s.strategy_id, s.side.value) for s in expected_signals(replay_slice())}
    assert {sid: d[:2] for sid, d in state.decisions.items()} == expected
    assert_books_are_clean(state)
    assert await count(run, "SELECT count(*) FROM fills") == state.fills > 0
    await assert_reality_check_passes(run)
    # The chaos cases (test_chaos.py) compare with this run instead of replaying it again.
    remember_undisturbed(state)


async def test_bad_input_is_dead_lettered_with_its_reason_and_trading_goes_on(
    make_system: Callable[..., Any], probe: QueueProbe, rabbitmq_url: str
) -> None:
    import aio_pika

    from protocol import topics

    run: SystemRun = await make_system()
    candle = replay_slice()[0].model_dump(mode="json", by_alias=True)
    nonsense = {**candle, "high": "1", "low": "99999"}  # a high below its low
    await run.start_consumers(probe.consumers)
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(run.exchange)
        for body, key in (
            (b'{"schema": "strategy.signal/1", "side": ', topics.signal("rsi-default", "BTC/USDT")),
            (json_bytes(nonsense), topics.candle("binance", "BTC/USDT", "15m")),
        ):
            await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key)
    state = await replay_to_end(run, probe)

    prefix = run.exchange
    assert state.dead_letters == {
        f"{prefix}.risk_manager.signals.dlq": 1,
        f"{prefix}.technical_analysis.candles.dlq": 1,
        f"{prefix}.risk_manager.candles.dlq": 1,  # protective exits read every candle (decision 0023)
        f"{prefix}.execution.candles.dlq": 1,
    }
    report = await run_checks(settings_of(run), CheckOptions.from_settings(settings_of(run), replay_finished=True))
    reasons = {c.name: c.detail for c in report.checks if c.group == "dead letters" and c.figure == "1"}
    assert "JSON" in reasons[f"{prefix}.risk_manager.signals.dlq"] or "json" in reasons[f"{prefix}.risk_manager.signals.dlq"]
    assert "high" in reasons[f"{prefix}.technical_analysis.candles.dlq"]
    # Trading went on: every real signal was decided, and the books are clean.
    expected = {str(s.message_id): (s.strategy_id, s.side.value) for s in expected_signals(replay_slice())}
    got = {sid: d[:2] for sid, d in state.decisions.items()}
    assert got == expected
    assert_books_are_clean(state.__class__(**{**state.__dict__, "dead_letters": {}}))


def json_bytes(value: dict[str, Any]) -> bytes:
    import json

    return json.dumps(value).encode()
