"""Bounded probes: every look at a service ends within its budget, as a verdict, never a hang.

A monitoring command that hangs when the broker is in trouble fails exactly when it is needed
(issue 15: a listener that accepts TCP and never answers kept `reality-check` waiting forever,
because aio-pika's robust connection retries without end). So every probe here runs under
``asyncio.wait_for`` with a budget of a few seconds, and whatever goes wrong — refused, silent,
slow, missing — becomes a FAIL row that says what is missing and what to do.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable

import structlog

from agents.monitor.report import Check, fail
from infra.logging import configure_logging, get_logger

__all__ = ["PROBE_TIMEOUT", "RUN_HINT", "bounded", "error_text", "log_to_stderr"]

log = get_logger(component="monitor.probe")

# Seconds one service gets to answer (connect included). Generous for a healthy local service
# (milliseconds), short enough that an operator sees the verdict at once.
PROBE_TIMEOUT = 5.0

RUN_HINT = "`tradebus run` uses per-run stores: `--run RUN_ID` or `--latest`"


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (a test runner swaps it and
    closes its own afterwards; a stream captured at configuration time would then be closed)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_to_stderr(tool: str, level: str) -> None:
    """JSON logs on stderr for an operator command, so stdout carries only its answer (a
    `--json` report is parsed by machines)."""
    configure_logging(tool, level)
    stream = _CurrentStderr()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))  # type: ignore[arg-type]
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)  # type: ignore[arg-type]


def error_text(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters (no stack traces in a table)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:limit]


async def bounded(
    probe: Awaitable[list[Check]], *, group: str, name: str, budget: float, hint: str
) -> list[Check]:
    """The probe's checks, or one FAIL row when it raised or did not finish within ``budget``.

    ``hint`` says what to do (which setting to look at); it ends every failure row."""
    try:
        return await asyncio.wait_for(probe, budget)
    except TimeoutError:
        log.warning("probe timed out", group=group, probe=name, budget=budget)
        return [fail(group, name, f"no answer within {budget:.0f}s", f"connected but silent or slow; {hint}")]
    except Exception as exc:  # any failure to reach the service is the finding itself
        log.warning("probe failed", group=group, probe=name, error=error_text(exc))
        return [fail(group, name, "unreachable", f"{error_text(exc)}; {hint}")]
