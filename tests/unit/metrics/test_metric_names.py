"""Prometheus naming rules for every metric tradebus registers (decision 0018)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from infra.metrics import REGISTRY, STANDARD_PREFIXES

# Labels whose values stay few: a process role, a queue, a market, a strategy, an enum.
ALLOWED_LABELS = {
    "queue", "role", "symbol", "strategy", "side", "reason", "outcome", "status", "state", "kind",
    "currency", "schema", "api",
}
# Values that grow with every message or order: never a label.
FORBIDDEN = ("id", "_id", "message", "order", "correlation", "causation", "routing_key", "topic", "trade", "instance")


def _metrics(registry: CollectorRegistry) -> list[Collector]:
    return [c for c in registry._collector_to_names if isinstance(c, (Counter, Gauge, Histogram))]  # noqa: SLF001


def violations(registry: CollectorRegistry) -> list[str]:
    """Every broken rule, as ``name: problem``."""
    found: list[str] = []
    for metric in _metrics(registry):
        name: str = metric._name  # noqa: SLF001
        labels: tuple[str, ...] = metric._labelnames  # noqa: SLF001
        kind = metric._type  # noqa: SLF001
        if name.startswith(STANDARD_PREFIXES):
            continue
        if not name.startswith("tradebus_"):
            found.append(f"{name}: no tradebus_ prefix")
        # prometheus_client keeps a counter's name without _total and adds it on exposition.
        full = f"{name}_total" if kind == "counter" else name
        if kind == "counter" and not full.endswith("_total"):
            found.append(f"{name}: counter without _total")
        if kind != "counter" and name.endswith("_total"):
            found.append(f"{name}: a {kind} named like a counter")
        if any(unit in name for unit in ("_ms", "millis", "_minutes", "_hours", "_percent")):
            found.append(f"{name}: not in base units (seconds, ratios)")
        if kind == "histogram" and not name.endswith(("_seconds", "_bytes", "_ratio")):
            found.append(f"{name}: a histogram without its base unit")
        for label in labels:
            if label not in ALLOWED_LABELS:
                found.append(f"{name}: label {label!r} is not in the bounded set")
            if label == "id" or any(label.endswith(bad) or label.startswith(bad) for bad in FORBIDDEN if bad != "id"):
                found.append(f"{name}: label {label!r} would carry ids (unbounded)")
    return found


def test_every_tradebus_metric_follows_the_naming_rules() -> None:
    names = [m._name for m in _metrics(REGISTRY)]  # noqa: SLF001
    assert len(names) >= 25, names  # the catalogue is registered (not an empty registry)
    assert violations(REGISTRY) == []


def test_the_rules_catch_each_kind_of_bad_metric() -> None:
    bad = CollectorRegistry()
    Counter("orders_placed", "no prefix", registry=bad)
    Gauge("tradebus_latency_ms", "not base units", registry=bad)
    Gauge("tradebus_things_total", "gauge named like a counter", registry=bad)
    Counter("tradebus_reports", "ids as labels", ["client_order_id", "message_id"], registry=bad)
    Histogram("tradebus_handler_duration", "no unit", registry=bad)
    problems = "\n".join(violations(bad))
    for expected in (
        "orders_placed: no tradebus_ prefix",
        "tradebus_latency_ms: not in base units",
        "tradebus_things_total: a gauge named like a counter",
        "label 'client_order_id' would carry ids",
        "label 'message_id' is not in the bounded set",
        "tradebus_handler_duration: a histogram without its base unit",
    ):
        assert expected in problems, problems
