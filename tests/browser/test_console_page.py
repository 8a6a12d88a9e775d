"""The console page in real headless Chromium, on the five agents replaying a short slice and the
console API, all as OS processes on the real services (see conftest.py).

The slice's first BUY signal is on candle 31: the page is opened after the first 30 candles, so
what happens after that can only reach it through the live stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.chaos import count
from tests.support.console_page import (
    LAPTOP,
    OPERATOR_TOKEN,
    PHONE,
    QUIET_CANDLES,
    READ_TOKEN,
    Console,
    chart_figure,
    confirm,
    enter_token,
    open_console,
    wait_on_page,
)

pytestmark = pytest.mark.browser

Shots = Callable[[Any, str], Awaitable[Path]]
# Far enough into the slice for its first BUY (candle 31) to be decided and filled.
TRADING_CANDLES = QUIET_CANDLES + 10


async def fits_the_screen(page: Any) -> None:
    """Nothing wider than the viewport (no sideways scrolling of the whole page) and the stop
    button on screen: the two things that break first on a phone."""
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the {PHONE['width']}px screen"
    box = await page.locator("#estop-engage, #estop-release").locator("visible=true").bounding_box()
    assert box is not None and box["x"] + box["width"] <= page.viewport_size["width"], box


async def test_the_chart_shows_candles_then_a_fill_marker_arrives_live_without_a_reload(
    console: Console, browser: Any, shots: Shots
) -> None:
    await console.replay_until(QUIET_CANDLES)
    assert await count(console.run, "SELECT count(*) FROM fills") == 0, "the slice must not trade before the page opens"
    page = await open_console(browser, console.url, LAPTOP, OPERATOR_TOKEN)
    await wait_on_page(page, f"n => ({chart_figure('candles')})() === n", f"{QUIET_CANDLES} candles", arg=QUIET_CANDLES)
    assert await page.evaluate(chart_figure("fillMarkers")) == 0
    await wait_on_page(page, "() => document.querySelector('#stream-state').dataset.state === 'live'", "the stream live")
    await page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads
    await shots(page, "laptop-before-fill")

    await console.replay_until(TRADING_CANDLES)
    fills = await count(console.run, "SELECT count(*) FROM fills")
    assert fills > 0, "the slice's first BUY must fill, or this test proves nothing"
    await wait_on_page(page, f"n => ({chart_figure('fillMarkers')})() === n", f"{fills} fill markers", arg=fills)
    await wait_on_page(page, f"n => ({chart_figure('candles')})() === n", f"{TRADING_CANDLES} candles", arg=TRADING_CANDLES)
    assert await page.evaluate("() => window.sameDocument") is True, "the page reloaded"
    assert await page.evaluate(chart_figure("signalMarkers")) > 0
    assert page.console_errors == []
    await shots(page, "laptop-after-fill")

    phone = await open_console(browser, console.url, PHONE, OPERATOR_TOKEN)
    await wait_on_page(phone, f"n => ({chart_figure('fillMarkers')})() === n", f"{fills} fill markers on a phone", arg=fills)
    await fits_the_screen(phone)
    await shots(phone, "phone-after-fill")


async def test_the_emergency_stop_halts_the_risk_manager_and_the_page_shows_the_next_buy_rejected(
    console: Console, browser: Any, shots: Shots
) -> None:
    await console.replay_until(QUIET_CANDLES)
    page = await open_console(browser, console.url, LAPTOP, OPERATOR_TOKEN)
    await page.click("#estop-engage")
    await shots(page, "laptop-confirm-stop")
    await confirm(page, "browser test: stop before the first BUY", by="ops on call")

    # Applied by the risk manager itself (only it writes its persisted state), with who asked.
    stopped = "SELECT count(*) FROM risk_state WHERE emergency_stop AND changed_by = 'ops on call'"
    await console.run.wait(lambda: _at_least(console, stopped, 1), timeout=60, what="the risk manager's emergency stop engaged")
    await wait_on_page(page, "() => document.querySelector('#trading-state').dataset.state === 'HALTED'", "the state HALTED")

    await console.replay_until(TRADING_CANDLES)
    rows = await _buy_decisions(console)
    assert rows, "the slice must signal a BUY after the stop, or this test proves nothing"
    assert {(decision, reason) for _, decision, reason in rows} == {("REJECTED", "EMERGENCY_STOP")}, rows
    first = rows[0][0]
    shown = await wait_on_page(
        page,
        "id => document.querySelector(`#decisions li[data-signal='${id}']`)?.dataset.reason",
        f"the decision on BUY signal {first}", arg=first,
    )
    assert shown == "EMERGENCY_STOP"
    text = await page.inner_text(f"#decisions li[data-signal='{first}']")
    assert "REJECTED" in text and "EMERGENCY_STOP" in text and "emergency stop engaged" in text, text
    assert await count(console.run, "SELECT count(*) FROM orders") == 0
    await shots(page, "laptop-stopped-buy-rejected")

    phone = await open_console(browser, console.url, PHONE, OPERATOR_TOKEN)
    await wait_on_page(phone, "() => document.querySelector('#trading-state').dataset.state === 'HALTED'", "HALTED on a phone")
    await fits_the_screen(phone)
    await shots(phone, "phone-stopped")


async def test_without_a_token_the_page_asks_for_one_and_a_read_token_is_refused_the_controls(
    bare_console: Console, browser: Any, shots: Shots
) -> None:
    for viewport, name in ((PHONE, "phone"), (LAPTOP, "laptop")):
        page = await open_console(browser, bare_console.url, viewport, token=None)
        await page.locator("#token-dialog").wait_for(state="visible", timeout=30_000)
        await shots(page, f"{name}-asks-for-token")
    # An unknown token is refused by the service, and the page asks again.
    await enter_token(page, "not-a-token")
    await page.locator("#token-error").wait_for(state="visible", timeout=30_000)
    assert "did not accept" in await page.inner_text("#token-error")
    await enter_token(page, READ_TOKEN)
    await wait_on_page(page, "() => document.body.dataset.ready === 'true'", "its state loaded with the read token")
    assert "read-only" in await page.inner_text("#role")

    await page.click("#estop-engage")
    await confirm(page, "browser test: a read token must not stop trading")
    notice = await wait_on_page(
        page, "() => document.querySelector('#notice[data-kind=refused]')?.textContent", "the control refused")
    assert "Refused" in notice and "403" in notice, notice
    risk = await bare_console.get("/risk-state")
    assert risk["emergency_stop"] is False, risk
    await shots(page, "laptop-read-token-refused")


async def _at_least(console: Console, sql: str, n: int) -> bool:
    return await count(console.run, sql) >= n


async def _buy_decisions(console: Console) -> list[tuple[str, str, str]]:
    """(signal id, decision, reason) of every BUY the risk manager decided, oldest first."""
    from sqlalchemy import text

    async with console.run.engine.connect() as conn:
        rows = await conn.execute(text("SELECT signal_id, decision, reason FROM risk_decisions WHERE side = 'BUY' ORDER BY id"))
        return [(str(r[0]), r[1], r[2]) for r in rows]
