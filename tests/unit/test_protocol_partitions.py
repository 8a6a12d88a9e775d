"""The partition mapping of protocol.topics (decision 0025): stable, spread, and carried by the key."""

from __future__ import annotations

import re

import pytest

from infra.bus.permissions import topic_regex
from protocol import Candle, ExecutionReport, Heartbeat, IndicatorSnapshot, OrderRequest, RiskRejection, Signal, topic_for, topics
from tests.unit.test_protocol_samples import sample

PARTITIONED = (Candle, IndicatorSnapshot, Signal, OrderRequest, ExecutionReport)


def test_the_partition_of_a_symbol_is_fixed_across_processes_and_spellings() -> None:
    # CRC-32 of the routing-key word: these values hold on every machine and Python version.
    assert topics.partition_of("BTC/USDT", 4) == 3
    assert topics.partition_of("ETH/USDT", 4) == 1
    assert topics.partition_of("btc/usdt", 4) == topics.partition_of("BTC-USDT", 4) == 3
    assert topics.partition_of("BTC/USDT", 1) == 0


def test_many_symbols_use_every_partition() -> None:
    symbols = [f"C{i}/USDT" for i in range(200)]
    spread = {topics.partition_of(s, 8) for s in symbols}
    assert spread == set(range(8))


@pytest.mark.parametrize("partitions", [0, 65])
def test_partition_counts_outside_the_range_are_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="partitions"):
        topics.partition_of("BTC/USDT", partitions)


@pytest.mark.parametrize("cls", PARTITIONED)
def test_pipeline_keys_carry_the_partition_word_only_when_partitioned(cls: type) -> None:
    message = sample(cls)
    plain = topic_for(message)
    assert topic_for(message, 1) == plain
    k = topics.partition_of(message.symbol, 4)  # type: ignore[attr-defined]
    assert topic_for(message, 4) == f"{plain}.p{k}"


@pytest.mark.parametrize("cls", [Heartbeat, RiskRejection])
def test_other_keys_never_carry_a_partition(cls: type) -> None:
    message = sample(cls)
    assert topic_for(message, 4) == topic_for(message)


def test_a_partition_binding_matches_its_partition_and_no_other() -> None:
    message = sample(Candle)
    k = topics.partition_of(message.symbol, 4)
    key = topic_for(message, 4)
    for partition in range(4):
        binding = topics.partition_binding(topics.ALL_CANDLES, partition, 4)
        assert bool(re.match(topic_regex(binding), key)) is (partition == k), binding
    # The monitor's unpartitioned binding still sees every partition's messages.
    assert re.match(topic_regex(topics.ALL_CANDLES), key)
    assert topics.partition_binding(topics.ALL_CANDLES, 0, 1) == topics.ALL_CANDLES
    with pytest.raises(ValueError):
        topics.partition_binding(topics.ALL_CANDLES, 4, 4)


def test_every_role_may_publish_its_keys_with_a_partition_word() -> None:
    """Broker permissions (decision 0011) follow the partitioned keys: a role's own keys pass with
    the word, another role's keys still do not."""
    from infra.bus.permissions import ROLES, publish_regex

    signal = sample(Signal)
    for role, message in (("data_collection", sample(Candle)), ("strategy", signal),
                          ("risk_manager", sample(OrderRequest)), ("execution", sample(ExecutionReport)),
                          ("technical_analysis", sample(IndicatorSnapshot))):
        assert re.search(publish_regex(ROLES[role]), topic_for(message, 4)), role
    mcp_signal = signal.model_copy(update={"strategy_id": "mcp-idea"})
    assert re.search(publish_regex(ROLES["mcp"]), topic_for(mcp_signal, 4))
    assert not re.search(publish_regex(ROLES["mcp"]), topic_for(signal, 4))
    assert not re.search(publish_regex(ROLES["mcp"]), topic_for(mcp_signal, 4) + ".extra")
