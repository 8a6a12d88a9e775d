"""The five agents and the console scraped by a real Prometheus server: PromQL answers equal the stores.

A short replay runs to a settled end; Prometheus (Debian's package, our own instance on a
temporary directory) scrapes every agent's /metrics each second; then its answers are compared
with the ledger and the audit, and every query of the Grafana dashboard is checked against the
names the agents really expose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from infra.influx import InfluxPriceStore
from infra.metrics import assign_ports
from tests.support.failures import closed_port
from tests.support.prometheus import PrometheusServer, prometheus_binary
from tests.support.promql import SYNTHETIC, dashboard_exprs, metric_names, series_names
from tests.support.system import AGENT_MODULES, QueueProbe, SystemRun
from tests.system.conftest import COUNT

pytestmark = pytest.mark.system


async def _rows(run: SystemRun, sql: str) -> list[Any]:
    async with run.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def test_prometheus_answers_equal_the_ledger_the_audit_and_every_agent_is_up(
    make_system: Callable[..., Any], probe: QueueProbe, tmp_path: Path
) -> None:
    prometheus_binary()  # skip (or fail under CI=true) before starting anything
    # The collector keeps running after the replay so its target stays up for the assertions.
    # The console is one more process with /metrics (on its own port, not the API's).
    run: SystemRun = await make_system(REPLAY_EXIT_ON_END="false", API_HOST="127.0.0.1", API_PORT=str(closed_port()),
                                       API_READ_TOKEN="metrics-read", API_OPERATOR_TOKEN="metrics-operator")
    ports = assign_ports(AGENT_MODULES, "127.0.0.1")
    run.agent_env = {agent: {"METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"} for agent, port in ports.items()}
    directory = tmp_path / "prometheus"
    directory.mkdir()
    async with PrometheusServer(directory, ports) as prometheus:
        await run.start_consumers(probe.consumers)
        run.start("api")
        run.start("data_collection")
        async with InfluxPriceStore(run.env["INFLUXDB_URL"], run.env["INFLUXDB_DATABASE"]) as store:
            async def replayed() -> bool:
                return await store.candle_count("binance", "BTC/USDT", "15m") >= COUNT

            await run.wait(replayed, timeout=480, what=f"{COUNT} candles stored by the replay")
        await run.wait_settled(probe.depth, timeout=240)
        settled_at = time.time()

        async def scraped_after_settling() -> bool:
            stamps = await prometheus.values('timestamp(up{job="tradebus"})', by="role")
            return len(stamps) == len(ports) and min(stamps.values()) > settled_at + 1

        await prometheus.wait(scraped_after_settling, timeout=60, what="a scrape of every agent after the run settled")

        up = await prometheus.values('up{job="tradebus"}', by="role")
        assert up == {agent: 1.0 for agent in ports}, prometheus.log_tail()

        orders = (await _rows(run, "SELECT count(*) FROM orders"))[0][0]
        assert orders > 0
        assert await prometheus.scalar("sum(tradebus_orders_total)") == orders

        audit = {r[0]: r[1] for r in await _rows(
            run, "SELECT reason, count(*) FROM risk_decisions WHERE decision = 'REJECTED' GROUP BY reason")}
        by_reason = await prometheus.values(
            'sum by (reason) (tradebus_risk_decisions_total{outcome="REJECTED"}) > 0', by="reason")
        assert by_reason == {reason: float(n) for reason, n in audit.items()}
        decisions = {r[0]: r[1] for r in await _rows(run, "SELECT decision, count(*) FROM risk_decisions GROUP BY decision")}
        by_outcome = await prometheus.values("sum by (outcome) (tradebus_risk_decisions_total) > 0", by="outcome")
        assert by_outcome == {outcome: float(n) for outcome, n in decisions.items()}

        # The dashboard: every query parses in Prometheus and reads names the agents expose.
        exposed = set(SYNTHETIC)
        async with httpx.AsyncClient(timeout=10) as client:
            for port in ports.values():
                exposed |= series_names((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
        for title, expr in dashboard_exprs():
            await prometheus.query(expr)
            missing = metric_names(expr) - exposed
            assert not missing, f"dashboard panel {title!r} reads {missing}, which no agent exposes"
