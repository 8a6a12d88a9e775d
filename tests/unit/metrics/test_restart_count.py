"""Each process the supervisor (re)starts learns how often it was restarted, for its
tradebus_agent_restarts metric."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from agents.runtime.supervisor import BackoffPolicy, ProcessSpec, Supervisor
from infra.metrics import RESTARTS_ENV


async def test_every_start_gets_the_restarts_before_it(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    code = f"import os, sys; open({str(seen)!r}, 'a').write(os.environ[{RESTARTS_ENV!r}] + ' '); sys.exit(1)"
    sup = Supervisor([ProcessSpec("crasher", [sys.executable, "-c", code])],
                     policy=BackoffPolicy(initial=0.05, cap=0.05), stop_timeout=2)
    await sup.start()
    deadline = time.monotonic() + 20
    while (not seen.exists() or len(seen.read_text().split()) < 3) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await sup.stop()
    assert seen.read_text().split()[:3] == ["0", "1", "2"]
