"""The /metrics endpoint of a process: ports from settings, a busy port refused clearly, the ASGI app."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from agents.runtime.base import EXIT_MISCONFIGURED, Agent, run_agent
from infra.metrics import DEFAULT_PORTS, MetricsPortBusy, assign_ports, metrics_app, metrics_port, start_metrics_server
from infra.settings import Settings


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process holds (bound and listening) for the test's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_port_setting_unset_means_the_role_default_and_zero_means_off() -> None:
    assert metrics_port(Settings(METRICS_PORT=""), "risk_manager") == DEFAULT_PORTS["risk_manager"] == 9104
    assert metrics_port(Settings(METRICS_PORT="0"), "risk_manager") is None
    assert metrics_port(Settings(METRICS_PORT="9999"), "risk_manager") == 9999
    assert start_metrics_server(Settings(METRICS_PORT="0"), "strategy") is None
    assert len(set(DEFAULT_PORTS.values())) == len(DEFAULT_PORTS)


def test_the_server_serves_the_registry_with_start_time_and_restarts() -> None:
    server = start_metrics_server(Settings(METRICS_PORT=str(_free())), "strategy", restarts="2")
    assert server is not None
    try:
        body = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    finally:
        server.close()
    assert "tradebus_agent_restarts 2.0" in body
    assert "# TYPE tradebus_bus_messages_consumed_total counter" in body
    assert "process_start_time_seconds" in body


def test_a_busy_port_is_refused_with_the_port_and_the_setting_to_change(held_port: int) -> None:
    with pytest.raises(MetricsPortBusy, match=rf"127\.0\.0\.1:{held_port} for execution .*METRICS_PORT"):
        start_metrics_server(Settings(METRICS_PORT=str(held_port)), "execution")


def test_an_agent_process_on_a_busy_port_exits_misconfigured_before_connecting(held_port: int) -> None:
    class Probe(Agent):
        name = "probe"

        async def setup(self) -> None:  # pragma: no cover - must not be reached
            raise AssertionError("the agent started despite the busy metrics port")

    settings = Settings(METRICS_PORT=str(held_port), RABBITMQ_URL="amqp://nobody:x@127.0.0.1:1/")
    assert run_agent(Probe, settings) == EXIT_MISCONFIGURED


def test_run_ports_are_distinct_and_avoid_a_busy_default(held_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DEFAULT_PORTS, "strategy", held_port)
    ports = assign_ports(["data_collection", "strategy", "execution"], "127.0.0.1")
    assert ports["strategy"] != held_port
    assert len(set(ports.values())) == 3


async def test_the_asgi_app_serves_the_same_registry() -> None:
    transport = httpx.ASGITransport(app=metrics_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert "tradebus_risk_decisions_total" in response.text
