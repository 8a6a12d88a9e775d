"""Browser-test fixtures: the five agents on a replay slice (the system tests' harness) plus the
console API as one more OS process, and a real headless Chromium (Debian's package, driven by
Playwright through ``executable_path``: Playwright's own browser download is not reachable here).

scripts/test installs chromium and builds the console's assets (scripts/lib/console.sh); when
either is missing these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.console_page import CHART_LIBRARY, OPERATOR_TOKEN, READ_TOKEN, Console
from tests.support.failures import closed_port
from tests.support.processes import ROOT
from tests.support.services import unavailable
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import make_system, probe  # noqa: F401 - fixtures shared with the system tests

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots for people (and CI artifacts) to look at; gitignored.
OUTPUT = ROOT / "test-output" / "browser"


async def _api_answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/api/v1/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def serve_console(make_system: Callable[..., Awaitable[SystemRun]], probe: QueueProbe, *, agents: bool,
                        **env: str) -> Console:
    """A deployment (``env`` on top of the system tests' settings) with its console API serving;
    the consuming agents attached when ``agents``."""
    if not CHART_LIBRARY.exists():
        unavailable(f"{CHART_LIBRARY} is not built (scripts/build-console)")
    port = closed_port()
    run = await make_system(API_HOST="127.0.0.1", API_PORT=str(port), API_READ_TOKEN=READ_TOKEN,
                            API_OPERATOR_TOKEN=OPERATOR_TOKEN, **env)
    if agents:
        await run.start_consumers(probe.consumers)
    run.start("api")
    url = f"http://127.0.0.1:{port}"
    await run.wait(lambda: _api_answers(url), timeout=90, what=f"the console API to answer {url}/api/v1/health")
    return Console(run, url, probe)


@pytest.fixture
async def console(make_system: Callable[..., Awaitable[SystemRun]], probe: QueueProbe) -> Console:  # noqa: F811
    """The four consuming agents attached and the API serving (on a free port); nothing replayed yet."""
    return await serve_console(make_system, probe, agents=True)


@pytest.fixture
async def bare_console(make_system: Callable[..., Awaitable[SystemRun]], probe: QueueProbe) -> Console:  # noqa: F811
    """The API alone on fresh stores (migrated database, declared bus): enough for the token checks."""
    return await serve_console(make_system, probe, agents=False)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (Debian: apt-get install chromium; scripts/test installs it as root)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        await launched.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[Any, str], Awaitable[Path]]:
    """``await shots(page, "name")`` saves a full-page PNG under test-output/browser/<test>/."""
    folder = OUTPUT / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)

    async def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
