"""Driving the console page in a real browser (tests/browser): open it, answer its token dialog,
wait for what it shows. Every wait is bounded and says what it waited for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.processes import ROOT
from tests.support.system import QueueProbe, SystemRun

CHART_LIBRARY = ROOT / "agents" / "api" / "static" / "vendor" / "lightweight-charts.mjs"
READ_TOKEN = "browser-read-3c0f71d2"
OPERATOR_TOKEN = "browser-operator-9a41be07"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Candles of the slice (tests/system/conftest.py) before its first BUY signal (candle 31).
QUIET_CANDLES = 30


@dataclass
class Console:
    """The system and its console API, started; the page is opened by the test."""

    run: SystemRun
    url: str
    probe: QueueProbe

    async def replay_until(self, candles: int) -> None:
        """Replay the slice's first ``candles`` (a restarted replay resumes after what is stored),
        then wait until the pipeline settled."""
        self.run.env["REPLAY_LIMIT"] = str(candles)
        if "data_collection" in self.run.processes:
            self.run.restart("data_collection")
        else:
            self.run.start("data_collection")
        await self.run.wait(lambda: not self.run.alive("data_collection"), timeout=300,
                            what=f"the replay of {candles} candles to end")
        assert self.run.processes["data_collection"].returncode == 0, self.run.log_tail("data_collection")
        await self.run.wait_settled(self.probe.depth, timeout=180)

    async def get(self, path: str, token: str = READ_TOKEN) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            return response.json()


async def wait_on_page(page: Any, expression: str, what: str, timeout: float = 60, arg: Any = None) -> Any:
    """Until the JS ``expression`` (a function of ``arg``) is truthy in the page; its value."""
    from playwright.async_api import TimeoutError as PageTimeout

    try:
        handle = await page.wait_for_function(expression, arg=arg, timeout=timeout * 1000, polling=250)
    except PageTimeout:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for the page to show {what}") from None
    return await handle.json_value()


async def open_console(browser: Any, url: str, viewport: dict[str, int], token: str | None) -> Any:
    """A fresh browser context (empty sessionStorage) on the console; answers the token dialog
    when ``token`` is given, and waits until the page has loaded its state."""
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors  # what the page's scripts threw, for the assertions
    await page.goto(url)
    if token is not None:
        await enter_token(page, token)
        await wait_on_page(page, "() => document.body.dataset.ready === 'true'", "its state loaded (body[data-ready])")
    return page


async def enter_token(page: Any, token: str) -> None:
    dialog = page.locator("#token-dialog")
    await dialog.wait_for(state="visible", timeout=30_000)
    await page.fill("#token-input", token)
    await page.click("#token-dialog button[type=submit]")


async def confirm(page: Any, reason: str, by: str = "") -> None:
    """Answer the confirmation dialog of a control with ``reason`` (and who asks, if given)."""
    await page.locator("#confirm-dialog").wait_for(state="visible", timeout=10_000)
    await page.fill("#confirm-reason", reason)
    await page.fill("#confirm-by", by)
    await page.click("#confirm-ok")


def chart_figure(name: str) -> str:
    """JS reading one figure the price chart was given (data-candles, data-fill-markers, ...)."""
    return f"() => Number(document.querySelector('#price-chart').dataset.{name})"
