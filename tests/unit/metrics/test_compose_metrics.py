"""Compose's metrics pieces checked as data: every agent's port exposed and scraped, Prometheus
with a pinned image, health and a named volume, Grafana provisioned under its profile.
scripts/compose-check runs them for real (Prometheus on a stand-in image)."""

from __future__ import annotations

from pathlib import Path

import yaml

from agents.runtime.registry import AGENTS
from infra.metrics import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[3]


def _load(path: str) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / path).read_text())


def test_prometheus_scrapes_every_agent_on_the_port_its_container_exposes() -> None:
    services = _load("docker-compose.yml")["services"]
    scrape = _load("infra/prometheus/prometheus.yml")["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "tradebus")
    targets = {s["labels"]["role"]: s["targets"] for s in job["static_configs"]}
    for name, entry in AGENTS.items():
        role = entry.package.rsplit(".", 1)[1]
        port = DEFAULT_PORTS[role]
        assert targets[role] == [f"{name}:{port}"]
        assert services[name]["expose"] == [str(port)]
        assert "METRICS_PORT" not in services[name]["environment"]  # the role's default
        assert services[name]["environment"]["METRICS_HOST"] == "0.0.0.0"
    # The console and the notifier are processes with /metrics too (not agents of the registry).
    for role in ("api", "notifier"):
        assert targets[role] == [f"{role}:{DEFAULT_PORTS[role]}"]
        assert services[role]["expose"] == [str(DEFAULT_PORTS[role])]


def test_prometheus_service_is_pinned_healthy_and_keeps_its_data() -> None:
    compose = _load("docker-compose.yml")
    prometheus = compose["services"]["prometheus"]
    assert prometheus["image"] == "${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.2}"
    assert "/-/ready" in " ".join(prometheus["healthcheck"]["test"])
    mounts = dict(m.split(":")[:2][::-1] for m in prometheus["volumes"])
    assert mounts["/prometheus"] in compose["volumes"]
    assert mounts["/etc/prometheus/prometheus.yml"] == "./infra/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert prometheus["ports"] == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]
    assert (ROOT / "infra/standins/prometheus/Dockerfile").read_text().count("prometheus") >= 2


def test_grafana_is_provisioned_under_its_profile() -> None:
    grafana = _load("docker-compose.yml")["services"]["grafana"]
    assert grafana["profiles"] == ["grafana"]  # compose-check and `up` never need its image
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    mounts = dict(m.split(":")[:2][::-1] for m in grafana["volumes"])
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    provider = yaml.safe_load((provisioning / "dashboards/tradebus.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert mounts["/var/lib/grafana/dashboards"] == "./infra/grafana/dashboards"
    assert list((ROOT / "infra/grafana/dashboards").glob("*.json"))
