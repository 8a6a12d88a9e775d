"""Is a failure transient (retry it, however long it takes) or permanent (bounded, then dead-letter)?

One classification for the whole system (DESIGN.md, "Faults"). Transient means the world will
fix it without a code change: the broker, Postgres or InfluxDB unreachable, slow or restarting;
a reset connection; a Postgres serialization failure or deadlock; an HTTP transport error or a
5xx/429. Everything else is permanent: an invalid message, a business refusal, a handler bug.

The decision walks the whole exception chain (``__cause__``, ``__context__``, SQLAlchemy's
``.orig``, exception groups), because the interesting error is usually wrapped: SQLAlchemy wraps
asyncpg's, which wraps the socket's. Libraries are recognised by their exception types when they
are importable and otherwise ignored, so this module costs no import the process does not make.
"""

from __future__ import annotations

import errno
import socket
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

# OSError numbers that mean "the network or the peer is (for now) not there".
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ENOTCONN", "ESHUTDOWN", "ETIMEDOUT",
        "ENETUNREACH", "ENETDOWN", "ENETRESET", "EHOSTUNREACH", "EHOSTDOWN", "EADDRNOTAVAIL",
    )
    if hasattr(errno, name)
)

# Postgres SQLSTATEs worth waiting out: serialization failure, deadlock, admin/crash shutdown,
# cannot connect now (starting up / recovering), too many connections (a restart storm).
# Class 08 (connection exception) is matched by prefix.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})

# Where an exception's type (or the code that raised it) lives tells which service failed.
_SERVICES = (
    ("asyncpg", "Postgres"),
    ("sqlalchemy", "Postgres"),
    ("psycopg", "Postgres"),
    ("infra.db", "Postgres"),
    ("infra.influx", "InfluxDB"),
    ("aiormq", "RabbitMQ"),
    ("aio_pika", "RabbitMQ"),
    ("pamqp", "RabbitMQ"),
    ("infra.bus", "RabbitMQ"),
    ("ccxt", "exchange"),
    ("infra.exchanges", "exchange"),
    ("httpx", "HTTP service"),
    ("httpcore", "HTTP service"),
)

# Modules that call handlers: a traceback's frames from here outwards are not the failure's.
_CALLERS = frozenset({"infra.bus.consumer"})


@dataclass(frozen=True)
class Fault:
    """The verdict on one failure: transient or not, and a short reason for logs and health."""

    transient: bool
    reason: str

    def __str__(self) -> str:
        return self.reason


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or anything in its chain) is a failure that waiting will cure."""
    return classify(exc).transient


def classify(exc: BaseException) -> Fault:
    """Classify a failure; the reason names the service and the exception, e.g.
    ``Postgres unreachable (ConnectionRefusedError)``."""
    for link in _chain(exc):
        problem = _transient_problem(link)
        if problem is not None:
            return Fault(True, f"{_service(link, exc)} {problem} ({_name(link)})")
    return Fault(False, f"{_name(exc)}: {exc}" if str(exc) else _name(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it, each once (chains can be cyclic)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current  # a group's members are judged together in _transient_problem
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        for linked in (orig, current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _transient_problem(exc: BaseException) -> str | None:
    """What is transiently wrong according to this one exception (not its chain); None if nothing."""
    if isinstance(exc, BaseExceptionGroup):
        # A group is transient only if every member is (one bug among outages is still a bug).
        members = [classify(member) for member in exc.exceptions]
        return "unavailable" if members and all(m.transient for m in members) else None
    sqlstate = _sqlstate(exc)
    if sqlstate is not None:
        return _sqlstate_problem(sqlstate)
    for check in (_own_problem, _library_problem, _os_problem):
        problem = check(exc)
        if problem is not None:
            return problem
    return None


def _own_problem(exc: BaseException) -> str | None:
    """Errors this project raises that mean "a service is unavailable"."""
    # Late imports: infra.bus imports this module, and only a failing handler pays for the rest.
    from infra.bus.errors import PublishFailed

    if isinstance(exc, PublishFailed):
        return "did not confirm a publish"
    from infra.exchanges.adapter import OrderOutcomeUnknown, RateLimited
    from infra.influx.errors import PriceStoreUnavailable

    if isinstance(exc, PriceStoreUnavailable):
        return "unavailable"
    if isinstance(exc, RateLimited):
        return "rate-limited"  # nothing was placed: waiting is the cure
    if isinstance(exc, OrderOutcomeUnknown):
        # A retry first asks the exchange by client order id (never places blindly).
        return "outcome unknown"
    return None


def _library_problem(exc: BaseException) -> str | None:
    """Connection-loss errors of the drivers, recognised by type where the library is installed."""
    module = type(exc).__module__
    if module.startswith("sqlalchemy"):
        return _sqlalchemy_problem(exc)
    if module.startswith("asyncpg"):
        return _asyncpg_problem(exc)
    if module.startswith("httpx"):
        return _httpx_problem(exc)
    if module.startswith(("aiormq", "aio_pika")):
        return _amqp_problem(exc)
    if module.startswith("ccxt"):
        import ccxt

        # Timeouts, 5xx, maintenance, rate limits: the outcome may be unknown, never "refused".
        return "unreachable" if isinstance(exc, ccxt.NetworkError) else None
    if isinstance(exc, RuntimeError) and _raised_in(exc, ("aio_pika", "aiormq")):
        return "connection not open"  # aio-pika's "Connection was not opened" while reconnecting
    return None


def _sqlalchemy_problem(exc: BaseException) -> str | None:
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return "connection lost"
    if isinstance(exc, sa.OperationalError | sa.DisconnectionError):
        return "unreachable"
    if isinstance(exc, sa.TimeoutError):
        return "connection pool exhausted"
    return None


def _asyncpg_problem(exc: BaseException) -> str | None:
    import asyncpg

    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return "unreachable"
    permanent_interface = (
        asyncpg.exceptions.DataError,
        asyncpg.exceptions.ClientConfigurationError,
        asyncpg.exceptions.UnsupportedClientFeatureError,
        asyncpg.exceptions.UnsupportedServerFeatureError,
    )
    # "connection is closed" / "connection was closed in the middle of operation"; other
    # interface errors (bad arguments, misuse) are bugs.
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, permanent_interface):
        return "connection lost" if "connection" in str(exc).lower() else None
    return None


def _httpx_problem(exc: BaseException) -> str | None:
    import httpx

    if isinstance(exc, httpx.UnsupportedProtocol):
        return None  # a wrong URL does not heal
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.TransportError):
        return "unreachable"
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return f"answered HTTP {code}" if code >= 500 or code == 429 else None
    return None


def _amqp_problem(exc: BaseException) -> str | None:
    import aiormq.exceptions as amqp

    # A missing queue/exchange, a refused permission or a clashing declaration is configuration.
    if isinstance(exc, amqp.ChannelNotFoundEntity | amqp.ChannelAccessRefused | amqp.ChannelPreconditionFailed):
        return None
    if isinstance(exc, amqp.AMQPConnectionError | amqp.ChannelInvalidStateError | amqp.ChannelClosed):
        return "connection lost"
    return None


def _os_problem(exc: BaseException) -> str | None:
    """Timeouts and network-level OSErrors, whoever raised them."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError from Python 3.11 on
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable"
    if isinstance(exc, ConnectionError):  # reset, aborted, broken pipe
        return "connection lost"
    if isinstance(exc, socket.gaierror):
        return "name not resolvable"  # a stopped container's hostname leaves Docker's DNS
    if isinstance(exc, OSError):
        if exc.errno in _NETWORK_ERRNOS:
            return "unreachable"
        # asyncio's create_connection when every address failed differently (::1 and 127.0.0.1)
        if exc.errno is None and str(exc).startswith("Multiple exceptions:") and "onnect call failed" in str(exc):
            return "unreachable"
    return None


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def _sqlstate_problem(sqlstate: str) -> str | None:
    if sqlstate == "40001":
        return "serialization failure"
    if sqlstate == "40P01":
        return "deadlock"
    if sqlstate.startswith("08") or sqlstate in _TRANSIENT_SQLSTATES:
        return f"unavailable (SQLSTATE {sqlstate})"
    return None


def _service(link: BaseException, outer: BaseException) -> str:
    """The service behind a failure: from the exception's type, else from the code it passed
    through (a bare ConnectionRefusedError raised inside asyncpg is Postgres's)."""
    for exc in (link, outer):
        found = _service_of_module(type(exc).__module__)
        if found is not None:
            return found
    for exc in (link, outer):
        # Innermost first: where the error arose, not who called the handler.
        for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
            module = str(frame.f_globals.get("__name__", ""))
            if module in _CALLERS:
                break  # above the handler: the bus consumer says nothing about the failing service
            found = _service_of_module(module)
            if found is not None:
                return found
    return "network"


def _service_of_module(module: str) -> str | None:
    for prefix, service in _SERVICES:
        if module == prefix or module.startswith(prefix + "."):
            return service
    return None


def _raised_in(exc: BaseException, packages: tuple[str, ...]) -> bool:
    return any(
        str(frame.f_globals.get("__name__", "")).split(".")[0] in packages
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def _name(exc: BaseException) -> str:
    return type(exc).__name__
