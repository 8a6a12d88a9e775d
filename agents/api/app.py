"""The console's FastAPI application: the stores it reads, its bus connection, its routes.

``create_app(settings)`` builds the app; the lifespan opens a read-only Postgres engine, the
InfluxDB reader and (in the background, retried, never blocking the start) the bus: one
confirmed publisher for controls and the private listener that feeds the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agents.api.auth import read_role
from agents.api.listener import BusListener
from agents.api.queries import LedgerReads
from agents.api.settings import ApiSettings
from agents.api.stream import EventRing
from infra.bus import Bus, system_topology
from infra.db import read_only_engine, session_factory
from infra.db.ledger import Ledger
from infra.influx import InfluxPriceStore
from infra.logging import get_logger
from infra.settings import redact_url
from infra.tokens import Role, require_tokens
from protocol import Message

__all__ = ["STATIC_DIR", "Services", "create_app"]

log = get_logger(component="api")

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"
SOURCE = "api"  # the `source` of the control messages the API publishes (broker role `api`)
# Each store call of a request is bounded: a slow store answers 503, it never hangs a page.
STORE_TIMEOUT = 5.0
_BUS_RETRY_SECONDS = 2.0


@dataclass
class Services:
    """What the routes read and publish through; built by the lifespan, held on app.state."""

    settings: ApiSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    ledger: Ledger
    reads: LedgerReads
    prices: InfluxPriceStore
    ring: EventRing
    listener: BusListener
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    bus: Bus | None = None
    bus_error: str | None = "not connected yet"
    _bus_task: asyncio.Task[None] | None = None

    async def publish(self, message: Message) -> str:
        """Publish a control, confirmed by the broker; its routing key. 503 when not possible."""
        bus = self.bus
        if bus is None or not bus.is_connected:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"the bus is not connected ({self.bus_error}); nothing was published")
        try:
            await bus.publish(message)
        except Exception as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"not confirmed by the broker ({type(exc).__name__}: {str(exc)[:200]}): "
                                "the control may not be in force; send it again") from None
        return bus.topology.routing_key(message)

    async def connect_bus(self) -> None:
        """Connect (declaring the topology, as every process does), then listen; retried until
        it works, so the API serves the stores while the broker is away."""
        settings = self.settings
        while True:
            bus = Bus(
                settings.rabbitmq_url.get_secret_value(),
                system_topology(settings.bus_exchange, settings.bus_partitions),
                connection_name=f"tradebus-api-{uuid.uuid4().hex[:8]}",
                publish_timeout=settings.bus_publish_timeout,
                quorum=settings.bus_quorum_queues,
            )
            try:
                await asyncio.wait_for(bus.connect(), settings.bus_publish_timeout)
                await self.listener.start(bus.connection, settings.bus_publish_timeout)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bus.close(), 5)
                raise
            except Exception as exc:
                self.bus_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("bus not connected; retrying", url=redact_url(settings.rabbitmq_url.get_secret_value()),
                            error=self.bus_error, retry_in=_BUS_RETRY_SECONDS)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bus.close(), 5)
                await asyncio.sleep(_BUS_RETRY_SECONDS)
                continue
            self.bus, self.bus_error = bus, None
            return

    async def close(self) -> None:
        if self._bus_task is not None:
            self._bus_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bus_task
        await self.listener.close()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.bus.close(), 10)
        await self.prices.close()
        await self.engine.dispose()


def build_services(settings: ApiSettings) -> Services:
    # Read-only at the database: the API cannot write the ledger, even by mistake (decision 0015).
    engine = read_only_engine(settings.database_url.get_secret_value(), STORE_TIMEOUT)
    sessions = session_factory(engine)
    token = settings.influxdb_token.get_secret_value() if settings.influxdb_token else None
    prices = InfluxPriceStore(settings.influxdb_url, settings.influxdb_database, token,
                              timeout=STORE_TIMEOUT, max_attempts=2, backoff=0.2)
    ring = EventRing(settings.api_stream_buffer)
    return Services(settings, engine, sessions, Ledger(sessions), LedgerReads(sessions), prices, ring,
                    BusListener(ring, settings.bus_exchange))


_PLACEHOLDER = (
    "<!doctype html><title>tradebus</title><p>tradebus console: the dashboard is not built "
    f"(agents/api/static/); the API is under {API_PREFIX} (claudedocs/api.md).</p>\n"
)


def _mount_dashboard(app: FastAPI) -> None:
    """The dashboard (agents/api/static/, its own change) at /; without it a placeholder page,
    so the service starts either way. Nothing is written to the package folder."""
    if (STATIC_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
        return

    @app.get("/", include_in_schema=False)
    async def placeholder() -> HTMLResponse:
        return HTMLResponse(_PLACEHOLDER)


def create_app(settings: ApiSettings | None = None, *, connect_bus: bool = True) -> FastAPI:
    """The console app. Refuses (MissingTokens) to be built outside development without tokens."""
    settings = settings or ApiSettings()
    require_tokens(settings, "tradebus api")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        if connect_bus:
            services._bus_task = asyncio.create_task(services.connect_bus(), name="api-bus-connect")
        log.info("api started", bus_exchange=settings.bus_exchange,
                 database=redact_url(settings.database_url.get_secret_value()),
                 influxdb_database=settings.influxdb_database)
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="tradebus console API",
        version="1",
        description="Reads the ledger, the price store and the bus; controls are bus messages the agents apply. "
                    "See claudedocs/api.md.",
        # The OpenAPI document needs a token like every route but health (served below); no
        # Swagger page: it loads its scripts from a CDN, and the contract is claudedocs/api.md.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    if settings.api_cors_origins:  # closed unless configured
        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])

    @app.middleware("http")
    async def request_log(request: Request, call_next):  # type: ignore[no-untyped-def]
        # The path only: a query string may hold the stream's access_token, and no token is logged.
        started = time.monotonic()
        response: Response = await call_next(request)
        log.info("request", method=request.method, path=request.url.path, status=response.status_code,
                 ms=round((time.monotonic() - started) * 1000, 1))
        return response

    from agents.api.routes_controls import router as controls_router
    from agents.api.routes_ledger import router as ledger_router
    from agents.api.routes_system import router as system_router

    for router in (system_router, ledger_router, controls_router):
        app.include_router(router, prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
    async def openapi_document(_: Annotated[Role, Depends(read_role)]) -> JSONResponse:
        return JSONResponse(app.openapi())

    _mount_dashboard(app)
    return app
