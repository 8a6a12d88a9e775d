"""The compose file, the Dockerfile and .env.example checked as data: every agent present with a
healthcheck and a restart policy, credentials only from .env, one broker user per process,
named volumes for every store, start order by health, official pinned images by default, a
non-root image. scripts/compose-check runs the same files for real on a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agents.runtime.registry import AGENTS
from infra.settings import PLACEHOLDER_SECRETS

ROOT = Path(__file__).resolve().parents[2]
# ${VAR:-default}: the image a user gets; scripts/compose-check sets VAR to a local stand-in.
IMAGE_VARIABLE = re.compile(r"\$\{([A-Z_]+)_IMAGE:-([^}]+)\}")
STORES = {"rabbitmq": "/var/lib/rabbitmq", "postgres": "/var/lib/postgresql/data", "influxdb": "/var/lib/influxdb2"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def default_image(image: str) -> str:
    """The image compose uses when its variable is unset."""
    match = IMAGE_VARIABLE.fullmatch(image)
    assert match, f"{image}: name the image through ${{..._IMAGE:-official}}"
    return match.group(2)


def test_every_agent_runs_from_the_one_image_with_health_and_restart(services: dict) -> None:
    for name in AGENTS:
        service = services[name]
        assert service["command"] == ["agent", name]
        assert service["build"]["dockerfile"] == "infra/docker/Dockerfile"
        assert service["build"]["args"]["BASE_IMAGE"] == "${TRADEBUS_BASE_IMAGE:-python:3.11-slim}"
        # Brings a crashed agent back (a `docker kill` is a manual stop to Docker: stays stopped).
        assert service["restart"] == "unless-stopped"
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
        image = default_image(service["image"])
        assert ":" in image and not image.endswith(":latest")
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped"
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert mounts[data_dir] in named, f"{name} keeps its data in a named volume"
    assert default_image(services["rabbitmq"]["image"]).startswith("rabbitmq:3.13-management")
    assert default_image(services["postgres"]["image"]) == "postgres:16"
    assert re.fullmatch(r"influxdb:2\.7\.\d+", default_image(services["influxdb"]["image"]))
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
    # The image's build-time base and every other variable default are no secrets.
    defaults = re.findall(r"\$\{([A-Z_]+):-", text)
    assert not [name for name in defaults if any(word in name for word in ("PASSWORD", "TOKEN", "SECRET"))]


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
    # The base is a build argument whose default is the official image users build on.
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    # Dependencies (from pyproject.toml) in a layer before the code, then the package itself.
    deps_at, code_at = text.index("pip install -r"), text.index("pip install --no-deps .")
    assert deps_at < text.index("COPY agents ./agents") < code_at
    # The console's chart library, built in its own stage from the lock file, is packaged with it.
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS console$", text, re.M) and "npm ci" in text
    assert text.index("COPY --from=console") < code_at
    assert re.search(r'^ENTRYPOINT \["tradebus"\]', text, re.M)
    assert "TRADEBUS_HEALTH_FILE" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".venv" in ignored


def test_compose_file_is_readable_by_docker_compose_1_29(compose: dict) -> None:
    # 1.29 refuses a top-level `name:` ("does not match any of the regexes: '^x-'"); the project
    # name comes from COMPOSE_PROJECT_NAME, which .env.example sets.
    assert set(compose) <= {"services", "volumes", "networks", "configs", "secrets"} | {
        key for key in compose if key.startswith("x-")
    }
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^COMPOSE_PROJECT_NAME=tradebus$", example, re.M)


def test_each_process_connects_to_the_broker_as_its_own_user(services: dict) -> None:
    users = {}
    for name in AGENTS:
        url = services[name]["environment"]["RABBITMQ_URL"]
        role = name.replace("-", "_")
        match = re.fullmatch(r"amqp://tradebus-([a-z_]+):\$\{RABBITMQ_PASSWORD_([A-Z_]+):\?[^}]+\}@rabbitmq:5672/", url)
        assert match, f"{name}: {url}"
        assert match.group(1) == role and match.group(2) == role.upper()
        users[name] = match.group(1)
    assert len(set(users.values())) == len(AGENTS)
    monitor = services["reality-check"]["environment"]["RABBITMQ_URL"]
    assert monitor.startswith("amqp://tradebus-monitor:${RABBITMQ_PASSWORD_MONITOR:?")
    # The migration job never talks to the broker, but settings check its URL: the monitor's.
    assert services["migrate"]["environment"]["RABBITMQ_URL"] == monitor
    assert all("RABBITMQ_USER" not in str(s.get("environment", {}).get("RABBITMQ_URL", "")) for s in services.values())


def test_broker_provisions_the_users_before_it_is_healthy(services: dict) -> None:
    rabbitmq = services["rabbitmq"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in rabbitmq["volumes"]}
    start = ROOT / mounts["/etc/tradebus/start-rabbitmq.sh"]
    assert rabbitmq["command"] == ["sh", "/etc/tradebus/start-rabbitmq.sh"]
    assert mounts["/etc/tradebus/provision-users.sh"] == "./infra/rabbitmq/provision-users.sh"
    assert (ROOT / "infra/rabbitmq/provision-users.sh").is_file()
    assert "sh /etc/tradebus/provision-users.sh" in start.read_text()
    marker = re.search(r"^ready=(\S+)$", start.read_text(), re.M).group(1)
    assert f"test -e {marker}" in rabbitmq["healthcheck"]["test"][1]
    env = rabbitmq["environment"]
    roles = set(env["TRADEBUS_REQUIRED_ROLES"].split())
    assert roles == {name.replace("-", "_") for name in AGENTS} | {"monitor", "api", "notifier"}
    for role in roles:
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[f"RABBITMQ_PASSWORD_{role.upper()}"])


def test_reality_check_is_a_tool_service_not_started_by_up(services: dict) -> None:
    tool = services["reality-check"]
    assert tool["profiles"] == ["tools"]
    assert tool["command"] == ["reality-check"]
    assert tool["restart"] == "no"
    assert set(tool["depends_on"]) == set(STORES)


def test_replay_slice_passes_through_only_when_set(services: dict) -> None:
    # A key without a value: compose passes the variable from .env/the shell, or leaves it unset
    # (an empty REPLAY_LIMIT would not parse as a number).
    env = services["data-collection"]["environment"]
    assert env["REPLAY_LIMIT"] is None and env["REPLAY_OFFSET"] is None


# What each stand-in (infra/standins/, used by scripts/compose-check) must honour of the
# environment compose gives the official image; InfluxDB 2.x's organisation, user and token
# have no 1.x counterpart (README: untested there).
STANDIN_CONTRACT = {
    "rabbitmq": {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"},
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"},
    "influxdb": {"DOCKER_INFLUXDB_INIT_MODE", "DOCKER_INFLUXDB_INIT_BUCKET"},
}


@pytest.mark.parametrize("store", sorted(STANDIN_CONTRACT))
def test_standin_images_honour_the_environment_compose_gives(store: str, services: dict) -> None:
    folder = ROOT / "infra/standins" / store
    dockerfile = (folder / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE$", dockerfile, re.M) and "FROM ${BASE_IMAGE}" in dockerfile
    entrypoint = folder / "entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111
    text = entrypoint.read_text()
    contract = STANDIN_CONTRACT[store]
    assert contract <= set(services[store]["environment"])
    for variable in contract:
        assert variable in text, f"the {store} stand-in ignores {variable}"
    # The healthcheck's program exists in the stand-in as in the official image: from the
    # Debian package that ships it, or (influx ping) a script of the stand-in's own.
    command = services[store]["healthcheck"]["test"]
    program = command[1] if command[0] == "CMD" else command[1].split("&&")[-1].split()[0]
    provider = HEALTHCHECK_PROVIDERS[program]
    assert provider in dockerfile, f"{store}: {program} comes from {provider}"


HEALTHCHECK_PROVIDERS = {
    "rabbitmq-diagnostics": "install -y --no-install-recommends rabbitmq-server",
    "pg_isready": "postgresql-15",
    "influx": "COPY influx /usr/local/bin/influx",
}


def test_the_strategy_agent_mounts_the_user_strategies_folder_read_only(services: dict) -> None:
    strategy = services["strategy"]
    assert strategy["volumes"] == ["${STRATEGIES_DIR:-./infra/strategies}:/strategies:ro"]
    assert (ROOT / "infra/strategies").is_dir()  # the default host folder exists in a fresh clone
    # Unset in .env: the shipped config inside the image.
    assert strategy["environment"]["STRATEGY_CONFIG"] == "${STRATEGY_CONFIG:-/app/agents/strategy/strategies.toml}"
    assert (ROOT / "agents/strategy/strategies.toml").is_file()


def test_the_console_runs_from_the_one_image_on_localhost_with_its_own_user_and_tokens(services: dict) -> None:
    api = services["api"]
    assert api["image"] == services["execution"]["image"] and api["command"] == ["api"]
    assert api["ports"] == ["127.0.0.1:${API_PORT:-8080}:8080"]  # never published beyond this machine
    env = api["environment"]
    assert env["RABBITMQ_URL"].startswith("amqp://tradebus-api:${RABBITMQ_PASSWORD_API:?")
    for token in ("API_READ_TOKEN", "API_OPERATOR_TOKEN"):
        assert re.fullmatch(rf"\$\{{{token}:\?[^}}]+\}}", env[token]), token
    assert "/api/v1/health" in " ".join(api["healthcheck"]["test"])
    assert set(api["depends_on"]) == set(STORES) | {"migrate"}


def test_the_notifier_runs_from_the_one_image_as_its_own_broker_user(services: dict) -> None:
    notifier = services["notifier"]
    assert notifier["command"] == ["notifier"]
    assert notifier["image"] == services["execution"]["image"]
    assert notifier["healthcheck"]["test"] == ["CMD", "tradebus", "healthcheck"]
    env = notifier["environment"]
    assert env["RABBITMQ_URL"].startswith("amqp://tradebus-notifier:${RABBITMQ_PASSWORD_NOTIFIER:?")
    # Targets pass through from .env only when set (an empty token must not count as configured).
    assert all(env[key] is None for key in ("NOTIFIER_WEBHOOK_URLS", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"))
