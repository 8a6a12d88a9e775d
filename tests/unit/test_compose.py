"""Docker cannot run here, so the compose file, the Dockerfile and .env.example are checked as
data: every agent present with a healthcheck and a restart policy, credentials only from .env,
named volumes for every store, start order by health, a non-root image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agents.runtime.registry import AGENTS
from infra.settings import PLACEHOLDER_SECRETS

ROOT = Path(__file__).resolve().parents[2]
STORES = {"rabbitmq": "/var/lib/rabbitmq", "postgres": "/var/lib/postgresql/data", "influxdb": "/var/lib/influxdb2"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def test_every_agent_runs_from_the_one_image_with_health_and_restart(services: dict) -> None:
    for name in AGENTS:
        service = services[name]
        assert service["command"] == ["agent", name]
        assert service["build"]["dockerfile"] == "infra/docker/Dockerfile"
        assert service["restart"] in {"always", "unless-stopped", "on-failure"}
        assert service["healthcheck"]["test"] == ["CMD", "tradebus", "healthcheck"]
        deps = service["depends_on"]
        for store in STORES:
            assert deps[store]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert len({services[name]["image"] for name in AGENTS} | {services["migrate"]["image"]}) == 1


def test_stores_have_pinned_images_healthchecks_and_named_volumes(compose: dict, services: dict) -> None:
    named = set(compose["volumes"])
    for name, data_dir in STORES.items():
        service = services[name]
        assert ":" in service["image"] and not service["image"].endswith(":latest")
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped"
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert mounts[data_dir] in named, f"{name} keeps its data in a named volume"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.13-management")
    assert services["postgres"]["image"] == "postgres:16"
    assert re.fullmatch(r"influxdb:2\.7\.\d+", services["influxdb"]["image"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_influxdb_is_initialised_from_env_with_a_v1_mapping(services: dict) -> None:
    env = services["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("ORG", "BUCKET", "ADMIN_TOKEN", "USERNAME", "PASSWORD"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"].startswith("${"), key
    init_mount = next(m for m in services["influxdb"]["volumes"] if "docker-entrypoint-initdb.d" in m)
    init_dir = ROOT / init_mount.split(":")[0]
    scripts = list(init_dir.glob("*.sh"))
    assert scripts and all(s.stat().st_mode & 0o111 for s in scripts)
    assert any("influx v1 dbrp create" in s.read_text() for s in scripts)


def test_migration_job_runs_once_after_postgres(services: dict) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_credentials_come_from_env_only(services: dict) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "guest" not in text.lower()
    secrets = {
        "rabbitmq": ["RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"],
        "postgres": ["POSTGRES_USER", "POSTGRES_PASSWORD"],
        "influxdb": ["DOCKER_INFLUXDB_INIT_PASSWORD", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"],
    }
    for service, keys in secrets.items():
        for key in keys:
            value = services[service]["environment"][key]
            # ${VAR:?message}: compose refuses to start while the secret is unset; no default.
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{service}.{key}={value}"
    agent_env = services["execution"]["environment"]
    assert agent_env["TRADEBUS_ENV"] == "${TRADEBUS_ENV:-production}"
    for url in (agent_env["RABBITMQ_URL"], agent_env["DATABASE_URL"]):
        assert ":?" in url and "@" in url


def test_env_example_holds_placeholders_only() -> None:
    values = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if line and not line.startswith("#")
    )
    for key, value in values.items():
        if any(word in key for word in ("PASSWORD", "TOKEN", "SECRET")):
            assert value.lower() in PLACEHOLDER_SECRETS, f"{key} must be a placeholder in .env.example"
    compose_vars = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert compose_vars <= set(values), f"missing from .env.example: {compose_vars - set(values)}"


def test_dockerfile_runs_as_non_root_and_installs_the_package() -> None:
    text = (ROOT / "infra/docker/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert "pip install ." in text
    assert re.search(r'^ENTRYPOINT \["tradebus"\]', text, re.M)
    assert "TRADEBUS_HEALTH_FILE" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".venv" in ignored
