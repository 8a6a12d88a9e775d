"""The broker permission model: which role may publish which routing key, and the generated
provisioning script that applies it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.bus.permissions import AGENT_ROLES, ROLES, provisioning_script, publish_regex, topic_regex
from protocol import topics

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "rabbitmq" / "provision-users.sh"


def may_publish(role: str, key: str) -> bool:
    # RabbitMQ applies a topic permission as an unanchored regex search.
    return re.search(publish_regex(ROLES[role]), key) is not None


def test_the_committed_script_is_the_generated_one() -> None:
    assert SCRIPT.read_text() == provisioning_script(), "regenerate: python -m infra.bus.permissions > " + str(SCRIPT)


KEYS = {
    topics.order("BTC/USDT"): {"risk_manager"},
    topics.rejection("trend", "BTC/USDT"): {"risk_manager"},
    topics.position("BTC/USDT"): {"risk_manager"},
    topics.risk_metrics(): {"risk_manager"},
    topics.execution_report("BTC/USDT"): {"execution"},
    topics.candle("binance", "BTC/USDT", "15m"): {"data_collection"},
    topics.gap("binance", "BTC/USDT", "15m"): {"data_collection"},
    topics.indicators("BTC/USDT", "15m"): {"technical_analysis"},
    topics.signal("trend", "BTC/USDT"): {"strategy"},
    topics.signal("mcp-claude", "BTC/USDT"): {"strategy", "mcp"},
    topics.signal("api-web", "ETH/USDT"): {"strategy", "api"},
    topics.emergency_stop(): {"operator", "api", "mcp"},
    topics.emergency_stop(active=False): {"operator", "api"},  # only a person releases the stop
    topics.cancel_order(): {"operator", "api", "risk_manager"},
    topics.pause_strategy(): {"operator", "api"},
    topics.close_position(): {"operator", "api"},
}


@pytest.mark.parametrize("key", sorted(KEYS))
def test_exactly_the_intended_roles_may_publish_each_key(key: str) -> None:
    assert {name for name in ROLES if may_publish(name, key)} == KEYS[key]


def test_every_agent_publishes_only_its_own_heartbeat() -> None:
    for role in AGENT_ROLES:
        allowed = {r.name for r in AGENT_ROLES if may_publish(r.name, topics.heartbeat(role.name))}
        assert allowed == {role.name}


def test_the_monitor_publishes_nothing() -> None:
    assert not any(may_publish("monitor", key) for key in KEYS)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("trade.order.#", "trade.order.BTC-USDT", True),
        ("trade.order.#", "trade.order", True),
        ("trade.order.#", "trade.orderX.BTC", False),
        ("trade.order.#", "xtrade.order.BTC", False),
        ("trade.order.#", "risk.trade.order.BTC", False),
        ("risk.metrics", "risk.metrics.extra", False),
        ("risk.metrics", "riskXmetrics", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.b.c", False),
    ],
)
def test_topic_patterns_become_anchored_regexes(pattern: str, key: str, matches: bool) -> None:
    assert (re.search(topic_regex(pattern), key) is not None) is matches


def test_no_pattern_contains_a_brace_rabbitmq_would_expand() -> None:
    assert not any("{" in publish_regex(role) or "}" in publish_regex(role) for role in ROLES.values())


def test_the_notifier_publishes_only_its_heartbeat_and_listens_on_private_queues() -> None:
    assert not any(may_publish("notifier", key) for key in KEYS)
    assert may_publish("notifier", topics.heartbeat("notifier"))
    assert not may_publish("notifier", topics.heartbeat("execution"))
    assert ROLES["notifier"].private_queues and not ROLES["notifier"].default_exchange
