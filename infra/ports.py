"""Whether a TCP address can be listened on now: one bind probe for every process that serves a port
(the console, /metrics), so a busy port is a clear error before anything starts."""

from __future__ import annotations

import socket

__all__ = ["bind_error"]


def bind_error(host: str, port: int) -> OSError | None:
    """Bind and release ``host:port`` once; the error, or None when it can be bound.

    SO_REUSEADDR as uvicorn and prometheus-client set it: a port in TIME_WAIT counts as free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None
