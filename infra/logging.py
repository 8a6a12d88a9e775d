"""Structured JSON logs: every line carries the agent name and the correlation id.

The correlation id lives in a context variable that the bus consumer binds for the duration of
one message, so handler code logs normally and still gets the chain id on every line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

def _ensure_keys(agent: str):  # type: ignore[no-untyped-def]
    def processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("agent", agent)
        event_dict.setdefault("correlation_id", None)
        return event_dict

    return processor


def _redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Secrets must never reach a log line, whatever a caller passes by mistake.
    for key in list(event_dict):
        lowered = key.lower()
        if any(word in lowered for word in ("secret", "password", "api_key", "apikey", "token")):
            event_dict[key] = "***"
    return event_dict


class _CurrentStderr:
    """Whatever sys.stderr is at write time, not at configure time.

    A logger bound to the stream object of the moment broke later code once that stream was
    closed (pytest's capture streams are; a daemon may swap stderr too).
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


def configure_logging(agent: str, level: str = "INFO") -> None:
    """Route structlog and stdlib logging to JSON lines on stderr with the agent bound."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _ensure_keys(agent),
        _redact,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Library logs (aio-pika, asyncpg, alembic) go through the same JSON renderer.
    handler = logging.StreamHandler(_STDERR)  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Library DEBUG output is noise (and ccxt puts request headers there): never below INFO.
    root.setLevel(max(numeric_level, logging.INFO))
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO: userinfo of INFLUXDB_URL, a webhook's secret
    # path, a Telegram bot token. The callers log what they did themselves, without secrets.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(**bound: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger with extra keys bound; agent and correlation id are added per line."""
    return structlog.get_logger(**bound)


def bind_correlation(correlation_id: str | None) -> None:
    """Bind the correlation id for the current task (the consumer calls this per message)."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


def clear_correlation() -> None:
    structlog.contextvars.unbind_contextvars("correlation_id")
