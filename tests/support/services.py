"""Find a real service for a test: a URL from the environment, else a testcontainers container
where a Docker daemon answers, else skip — except under CI=true, where a missing service fails
the run so that a skip can never hide a gap."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true."""
    if in_ci():
        pytest.fail(f"required service unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def port_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def docker_available() -> bool:
    try:
        import docker  # testcontainers depends on it

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # any failure means "no daemon answers"
        return False


@contextmanager
def service_url(env_var: str, default_port: int, start_container: Callable[[], Iterator[str]]) -> Iterator[str]:
    """Yield a URL for the service in the documented order of preference."""
    url = os.environ.get(env_var)
    if url:
        if not port_open(url, default_port):
            unavailable(f"{env_var}={url} is set but nothing answers there")
        yield url
        return
    if docker_available():
        yield from start_container()
        return
    unavailable(f"{env_var} is not set and no Docker daemon answers for testcontainers")


# The images testcontainers starts: the official ones by default; scripts/compose-check points
# these at its locally built stand-ins (no image registry is reachable on the project's machines).
TESTCONTAINERS_IMAGES = {
    "RABBITMQ": "rabbitmq:3.13-management",
    "POSTGRES": "postgres:16-alpine",
    "INFLUXDB": "influxdb:1.8",
}

# The containers started for this test session, by the URL variable they stand in for, so a test
# can prove which services came from testcontainers (tests/integration/test_testcontainers.py).
STARTED_CONTAINERS: dict[str, Any] = {}


def container_image(store: str) -> str:
    """The image for a store's container: TRADEBUS_TESTCONTAINERS_<STORE>_IMAGE, else the default."""
    return os.environ.get(f"TRADEBUS_TESTCONTAINERS_{store}_IMAGE") or TESTCONTAINERS_IMAGES[store]


def rabbitmq_container() -> Iterator[str]:
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer(container_image("RABBITMQ")) as container:
        STARTED_CONTAINERS["RABBITMQ_URL"] = container
        params = container.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"


def postgres_container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer(container_image("POSTGRES"), driver="asyncpg") as container:
        STARTED_CONTAINERS["DATABASE_URL"] = container
        yield container.get_connection_url()


INFLUXDB_READY_SECONDS = 60.0


def influxdb_container() -> Iterator[str]:
    # A plain container waited for on /ping, which every InfluxDB answers (1.x, 2.x and the
    # Debian 1.x stand-in); testcontainers' InfluxDB class waits on /health, absent before 1.8.
    import httpx
    from testcontainers.core.container import DockerContainer

    with DockerContainer(container_image("INFLUXDB")).with_exposed_ports(8086) as container:
        STARTED_CONTAINERS["INFLUXDB_URL"] = container
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8086)}"
        deadline = time.monotonic() + INFLUXDB_READY_SECONDS
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"InfluxDB container {container.image} did not answer {url}/ping "
                    f"within {INFLUXDB_READY_SECONDS:.0f} s"
                )
            time.sleep(0.5)
        yield url
