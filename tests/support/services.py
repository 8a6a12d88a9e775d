"""Find a real service for a test: a URL from the environment, else a testcontainers container
where a Docker daemon answers, else skip — except under CI=true, where a missing service fails
the run so that a skip can never hide a gap."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def rabbitmq_container() -> Iterator[str]:
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-management") as container:
        params = container.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"


def postgres_container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
        yield container.get_connection_url()


def influxdb_container() -> Iterator[str]:
    from testcontainers.influxdb import InfluxDbContainer

    with InfluxDbContainer("influxdb:1.8") as container:
        yield container.get_url()
