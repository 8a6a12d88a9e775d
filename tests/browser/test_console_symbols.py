"""The console page on a two-symbol run (BTC/USDT and NFLX/USDT daily, decision 0027): the symbol
selector offers both, and choosing one shows that symbol's candles and fills on the chart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import serve_console
from tests.support.chaos import count, replay_to_end
from tests.support.console_page import LAPTOP, READ_TOKEN, chart_figure, open_console, wait_on_page
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import SYMBOLS, TWO_SYMBOLS_ENV, two_symbol_slice

pytestmark = pytest.mark.browser


async def test_the_symbol_selector_shows_each_symbols_candles_and_fills(
    make_system: Callable[..., Awaitable[SystemRun]], probe: QueueProbe, browser: Any,
    shots: Callable[[Any, str], Awaitable[Path]],
) -> None:
    console = await serve_console(make_system, probe, agents=False, **TWO_SYMBOLS_ENV)
    await replay_to_end(console.run, probe)
    candles = two_symbol_slice()
    page = await open_console(browser, console.url, LAPTOP, READ_TOKEN)
    options = await page.evaluate("() => [...document.querySelectorAll('#symbol option')].map(o => o.value)")
    assert options == list(SYMBOLS)
    for symbol in SYMBOLS:
        await page.select_option("#symbol", symbol)
        fills = await count(console.run, f"SELECT count(*) FROM fills WHERE symbol = '{symbol}'")
        assert fills > 0, f"{symbol} must trade in the slice, or this test proves nothing"
        await wait_on_page(page, f"n => ({chart_figure('candles')})() === n", f"{len(candles[symbol])} {symbol} candles",
                           arg=len(candles[symbol]))
        await wait_on_page(page, f"n => ({chart_figure('fillMarkers')})() === n", f"{fills} {symbol} fill markers", arg=fills)
        await shots(page, f"two-symbols-{symbol.replace('/', '-')}")
    # The orders table names each order's symbol (one account, several markets).
    shown = await page.evaluate("() => [...document.querySelectorAll('#orders tr[data-order]')].map(r => r.dataset.symbol)")
    for symbol in SYMBOLS:  # the slice's 13 orders all fit the table's 20 rows
        assert shown.count(symbol) == await count(console.run, f"SELECT count(*) FROM orders WHERE symbol = '{symbol}'") > 0
    assert page.console_errors == []
