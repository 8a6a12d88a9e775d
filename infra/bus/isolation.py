"""Suspects run alone: a message that was in handling when a consumer process died is handled
while no other handler of the process runs.

When a process dies, every message it was handling is counted as having killed it (the crash
journal cannot know which one did). Run again side by side, the innocent ones would keep being
counted with the guilty one until they, too, were dead-lettered. Run one at a time, only the
guilty one is in handling when the process dies next, so only it climbs to the bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from infra.logging import get_logger

log = get_logger(component="bus.isolation")

# The Pass of the handling running in this task (set by the consumer around its handler).
_current: ContextVar["Pass | None"] = ContextVar("tradebus_bus_pass", default=None)


@asynccontextmanager
async def waiting_on_other_messages() -> AsyncIterator[None]:
    """Around a handler's wait for the effects of other messages of its process (the risk
    manager waiting for a report to settle an open order): meanwhile the handling neither holds
    exclusivity (a suspect gives it up for good) nor counts as running for a suspect waiting to
    run alone. Otherwise the report it waits for could not be handled until a bound ran out."""
    admitted = _current.get()
    if admitted is None:
        yield
        return
    await admitted.release_exclusive()
    await admitted._gate._step_out()
    try:
        yield
    finally:
        await admitted._gate._step_in()


class IsolationGate:
    """Shared for ordinary handling, exclusive for suspects, across all consumers of one bus.

    A suspect waits for the handlers already running at most ``timeout`` seconds (one of them may
    be waiting out a long outage); after that it runs anyway, which at worst over-counts one crash
    for the others. While a suspect waits or runs, no new handling starts."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._running = 0
        self._exclusive = False
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def enter(self, *, exclusive: bool) -> AsyncIterator["Pass"]:
        """Hold the gate for one handling; the Pass can give exclusivity up early."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            if exclusive:
                self._exclusive = True
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: self._running == 0), self._timeout)
                except asyncio.TimeoutError:
                    log.warning("suspect runs beside handlers that did not finish", waited=self._timeout)
            self._running += 1
        admitted = Pass(self, exclusive)
        token = _current.set(admitted)
        try:
            yield admitted
        finally:
            _current.reset(token)
            await admitted.release_exclusive()
            async with self._changed:
                self._running -= 1
                self._changed.notify_all()

    async def _step_out(self) -> None:
        async with self._changed:
            self._running -= 1
            self._changed.notify_all()

    async def _step_in(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._running += 1

    async def _open(self) -> None:
        async with self._changed:
            self._exclusive = False
            self._changed.notify_all()


class Pass:
    """One admitted handling; a suspect releases exclusivity once it is no longer the likely
    killer (it waits out a transient failure, during which others may run)."""

    def __init__(self, gate: IsolationGate, exclusive: bool) -> None:
        self._gate = gate
        self.exclusive = exclusive

    async def release_exclusive(self) -> None:
        if self.exclusive:
            self.exclusive = False
            await self._gate._open()
