"""Prometheus metrics for every tradebus process (decision 0018; catalogue: claudedocs/architecture.md).

Two ways to serve them, from one registry (:data:`REGISTRY`):

- an agent process (or any other process without a web server) calls
  :func:`start_metrics_server` once at start: a small HTTP server thread answers
  ``GET /metrics`` on ``METRICS_HOST:METRICS_PORT`` (unset: the role's default port from
  :data:`DEFAULT_PORTS`; 0: off);
- a FastAPI/ASGI process mounts :func:`metrics_app` (``app.mount("/metrics", metrics_app())``)
  and needs no second port.

The metric objects live in :mod:`infra.metrics.catalogue`; :mod:`infra.metrics.observe` holds
the few functions the bus and the agents call to update them.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import make_asgi_app, start_http_server

from infra.metrics.catalogue import AGENT_RESTARTS, AGENT_START_TIME, REGISTRY, STANDARD_PREFIXES
from infra.ports import bind_error
from infra.settings import Settings

__all__ = [
    "DEFAULT_PORTS",
    "assign_ports",
    "REGISTRY",
    "STANDARD_PREFIXES",
    "MetricsPortBusy",
    "MetricsServer",
    "RESTARTS_ENV",
    "free_port",
    "metrics_app",
    "metrics_port",
    "port_is_free",
    "start_metrics_server",
]

# One default port per process role, so every process of one host can expose metrics without
# configuration (compose uses the same ports, one per container). 9100 is node_exporter's.
DEFAULT_PORTS: dict[str, int] = {
    "data_collection": 9101,
    "technical_analysis": 9102,
    "strategy": 9103,
    "risk_manager": 9104,
    "execution": 9105,
    "api": 9106,
    "notifier": 9107,
    "mcp": 9108,
}

# Set by the supervisor of `tradebus run` for each child: restarts before this process started.
RESTARTS_ENV = "TRADEBUS_RESTARTS"


class MetricsPortBusy(RuntimeError):
    """The configured metrics port cannot be bound (another process holds it)."""


@dataclass(frozen=True)
class MetricsServer:
    host: str
    port: int
    server: Any  # the WSGI server; ``shutdown()`` stops it (tests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def metrics_port(settings: Settings, role: str) -> int | None:
    """The port ``role`` serves metrics on: METRICS_PORT, else the role's default; None when off."""
    if settings.metrics_port is None:
        return DEFAULT_PORTS.get(role)
    return settings.metrics_port or None


def start_metrics_server(settings: Settings, role: str, *, restarts: str | None = None) -> MetricsServer | None:
    """Serve ``/metrics`` for this process; None when metrics are off (METRICS_PORT=0).

    Raises MetricsPortBusy with the host, port and setting to change when the port is taken: a
    scrape target that silently serves another process's metrics would be worse than none."""
    port = metrics_port(settings, role)
    mark_started(restarts)
    if port is None:
        return None
    try:
        server, _thread = start_http_server(port, addr=settings.metrics_host, registry=REGISTRY)
    except OSError as exc:
        raise MetricsPortBusy(
            f"metrics port {settings.metrics_host}:{port} for {role} cannot be bound ({exc.strerror or exc}); "
            "set METRICS_PORT to a free port, or METRICS_PORT=0 to turn metrics off"
        ) from exc
    return MetricsServer(settings.metrics_host, int(server.server_address[1]), server)


def mark_started(restarts: str | None) -> None:
    """Record this process's start time and its supervisor's restart count."""
    AGENT_START_TIME.set(time.time())
    try:
        AGENT_RESTARTS.set(int(restarts or 0))
    except ValueError:
        AGENT_RESTARTS.set(0)


def metrics_app() -> Any:
    """An ASGI app serving the registry, for ``app.mount("/metrics", metrics_app())``."""
    return make_asgi_app(registry=REGISTRY)


def port_is_free(host: str, port: int) -> bool:
    """Can ``host:port`` be bound right now (without SO_REUSEPORT tricks)?"""
    return bind_error(host, port) is None


def free_port(host: str, preferred: int | None = None, taken: Iterable[int] = ()) -> int:
    """``preferred`` when it is free and not ``taken``, else a port the OS picks."""
    taken = set(taken)
    if preferred and preferred not in taken and port_is_free(host, preferred):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port


def assign_ports(roles: Iterable[str], host: str) -> dict[str, int]:
    """A distinct metrics port for each role of one host: its default when free, else one the
    OS picks (so a second `tradebus run` next to a first still serves every process)."""
    ports: dict[str, int] = {}
    for role in roles:
        ports[role] = free_port(host, DEFAULT_PORTS.get(role), taken=ports.values())
    return ports
