"""The Grafana dashboard reads only metrics tradebus registers (the running-system check against a
real scrape is tests/system/test_system_metrics.py)."""

from __future__ import annotations

from prometheus_client import generate_latest

from infra.metrics import REGISTRY
from tests.support.promql import SYNTHETIC, dashboard_exprs, metric_names, series_names


def test_metric_names_of_an_expression() -> None:
    expr = ('histogram_quantile(0.95, sum by (queue, le) (rate(tradebus_bus_handler_duration_seconds_bucket'
            '{queue="x", le!="1e3"}[5m]))) / on (role) group_left up offset 1m > 1e3')
    assert metric_names(expr) == {"tradebus_bus_handler_duration_seconds_bucket", "up"}


def test_every_dashboard_query_reads_a_registered_metric() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    known = series_names(generate_latest(REGISTRY).decode()) | SYNTHETIC
    unknown = {(title, name) for title, expr in exprs for name in metric_names(expr) if name not in known}
    assert unknown == set()
    read = {name for _, expr in exprs for name in metric_names(expr)}
    # The list: every group of the catalogue is on the dashboard.
    for needed in ("tradebus_orders_total", "tradebus_risk_decisions_total", "tradebus_equity",
                   "tradebus_emergency_stop", "tradebus_exchange_circuit_state", "tradebus_agent_restarts"):
        assert needed in read
