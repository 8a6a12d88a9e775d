"""Failover time: from killing the active instance(s) to the standby moving the work on.

Reusable by the system tests and the pipeline benchmark (scripts/bench_pipeline.py): pass what
kills (a SIGKILL of the active consumers) and a counter of the work done (decisions, snapshots,
order events). The figure is the time until that counter first grows after the kill, so it
includes the broker noticing the dead connection, handing the queue to a waiting consumer
(single active consumer), the redelivery of the unacked message and the standby rebuilding its
per-symbol state. Measure under load (work queued): an idle pipeline would time its idleness.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def measure_takeover(
    kill: Callable[[], None], progress: Callable[[], Awaitable[int]], *, timeout: float, poll: float = 0.05
) -> float:
    """Seconds from ``kill()`` until ``progress()`` exceeds its value right after the kill
    (read after it, so nothing the killed instance did counts; at worst the figure is a poll
    long); TimeoutError past ``timeout``."""
    killed_at = time.monotonic()
    kill()
    before = await progress()
    while time.monotonic() - killed_at < timeout:
        if await progress() > before:
            return time.monotonic() - killed_at
        await asyncio.sleep(poll)
    raise TimeoutError(f"no progress within {timeout}s of the kill")
