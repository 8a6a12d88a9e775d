"""The testcontainers path of the service fixtures, proven rather than assumed.

scripts/compose-check runs one integration module per store with RABBITMQ_URL, DATABASE_URL and
INFLUXDB_URL unset and TRADEBUS_EXPECT_TESTCONTAINERS=1, so the fixtures in tests/conftest.py
start containers (from the locally built stand-in images named by
TRADEBUS_TESTCONTAINERS_<STORE>_IMAGE). This module, run in the same pytest session, checks
that every store URL the tests got is a host port Docker mapped to a running container of the
configured image. In the ordinary runs against the machine's services it has nothing to prove
and skips.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.support.services import STARTED_CONTAINERS, container_image

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("TRADEBUS_EXPECT_TESTCONTAINERS") != "1",
        reason="only in the testcontainers pass of scripts/compose-check (TRADEBUS_EXPECT_TESTCONTAINERS=1)",
    ),
]


@pytest.mark.parametrize(
    ("variable", "fixture", "store", "port"),
    [
        ("RABBITMQ_URL", "rabbitmq_url", "RABBITMQ", 5672),
        ("DATABASE_URL", "postgres_server_url", "POSTGRES", 5432),
        ("INFLUXDB_URL", "influxdb_server_url", "INFLUXDB", 8086),
    ],
)
def test_store_url_is_a_mapped_port_of_a_testcontainers_container(
    variable: str, fixture: str, store: str, port: int, request: pytest.FixtureRequest
) -> None:
    import docker

    assert variable not in os.environ, f"{variable} is set: the fixture would not start a container"
    url = request.getfixturevalue(fixture)
    assert variable in STARTED_CONTAINERS, f"no container was started for {variable}; the fixture gave {url}"
    started = STARTED_CONTAINERS[variable]
    client = docker.from_env(timeout=10)
    try:
        container = client.containers.get(started.get_wrapped_container().id)
        image_tags = container.image.tags
        bindings = container.ports.get(f"{port}/tcp") or []
    finally:
        client.close()
    assert container.status == "running"
    assert container_image(store) in image_tags, f"{variable}: container of {image_tags}, not {container_image(store)}"
    host_ports = {int(binding["HostPort"]) for binding in bindings}
    assert urlsplit(url).port in host_ports, f"{url} is not one of the ports Docker mapped to {port}/tcp: {host_ports}"
