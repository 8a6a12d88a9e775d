"""Run the console with uvicorn: `tradebus api` and `python -m agents.api`.

A port in use or missing tokens outside development end the process at once with a sentence
that says what to change (exit 2), never a traceback.
"""

from __future__ import annotations

import errno
import sys

from agents.api.settings import ApiSettings
from infra.logging import configure_logging, get_logger
from infra.metrics import MetricsPortBusy, start_metrics_server
from infra.ports import bind_error
from infra.tokens import MissingTokens

__all__ = ["PortUnavailable", "check_port", "main", "serve"]

EXIT_CONFIG = 2
log = get_logger(component="api.server")


class PortUnavailable(RuntimeError):
    """The API's address cannot be bound (in use, or not an address of this machine)."""


def check_port(host: str, port: int) -> None:
    """Bind and release ``host:port`` once, so a busy port is a clear error before anything starts."""
    exc = bind_error(host, port)
    if exc is None:
        return
    if exc.errno == errno.EADDRINUSE:
        raise PortUnavailable(f"port {port} on {host} is already in use: stop what listens there or set "
                              "API_PORT (tradebus run: --no-api leaves the API out)")
    raise PortUnavailable(f"cannot listen on {host}:{port} ({exc.strerror}); check API_HOST and API_PORT")


def serve(settings: ApiSettings) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn's graceful shutdown runs the app's lifespan end)."""
    import uvicorn

    from agents.api.app import create_app

    app = create_app(settings)
    check_port(settings.api_host, settings.api_port)
    # /metrics on its own port like every process (API :9106 by default), not on the API's port:
    # every API route needs a token, and a scrape target on the internal network needs none.
    start_metrics_server(settings, "api")
    # access_log off: uvicorn would log the query string, which may hold the stream's token;
    # the app logs every request itself, path only (agents.api.app).
    config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_config=None,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    print(f"tradebus api listening on http://{settings.api_host}:{settings.api_port}/ "
          f"(API: /api/v1, OpenAPI: /api/v1/openapi.json with a token)", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()


def main(settings: ApiSettings | None = None) -> int:
    settings = settings or ApiSettings()
    configure_logging("api", settings.log_level)
    try:
        serve(settings)
    except (MissingTokens, PortUnavailable, MetricsPortBusy) as exc:
        log.error("api not started", reason=str(exc))
        print(f"tradebus api: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
    return 0
