"""Live-mode soak: the five agents as OS processes trade against the local Binance-speaking
server (1-second klines re-timed from real BTC candles, a signed account), while the server
misbehaves the way Binance does and execution is SIGKILLed once mid-run.

Injected on the order endpoint: timeouts after the order WAS placed (the answer held past the
client's timeout), -1007 "send status unknown" with the order placed a moment later, 503 before
anything happened, 429 and 418. At the end nothing is lost or doubled: the server's own account
equals the ledger asset by asset, and the server accepted exactly one order per approval.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from agents.execution.settings import LIVE_CONFIRMATION
from tests.support.fake_binance import ORDER, TEST_API_KEY, TEST_SECRET, FakeBinance, klines_from_candles
from tests.support.system import QueueProbe, SystemRun
from tests.system.conftest import replay_slice

pytestmark = pytest.mark.system

HISTORY, LIVE = 60, 70  # candles before the start (warm-up, never traded), candles served live
CLIENT_TIMEOUT = 2.0


def live_env(url: str) -> dict[str, str]:
    return {
        "TIMEFRAME": "1s", "DATA_SOURCE": "exchange", "TRADING_MODE": "live", "LIVE_TRADING_CONFIRM": LIVE_CONFIRMATION,
        "EXCHANGE_API_KEY": TEST_API_KEY, "EXCHANGE_API_SECRET": TEST_SECRET, "EXCHANGE_API_URL": url,
        "BACKFILL_DAYS": str((HISTORY + 5) / 86400),
        # The history is backfilled for the indicators; its signals are history, never traded.
        "RISK_MAX_SIGNAL_AGE": "30",
        "RISK_MAX_ORDERS_PER_HOUR": "10000", "RISK_MAX_ORDERS_PER_DAY": "10000", "RISK_SETTLE_WAIT": "30",
        # Short indicator periods: the real prices, on a 1 s clock, trade every few candles.
        "TA_SMA_FAST": "3", "TA_SMA_SLOW": "8", "STRATEGY__SMA_CROSS__FAST": "3", "STRATEGY__SMA_CROSS__SLOW": "8",
        "TA_MACD_FAST": "3", "TA_MACD_SLOW": "8", "TA_MACD_SIGNAL": "3", "STRATEGY__MACD_CROSS__STRENGTH_WINDOW": "8",
        "TA_WINDOW": "100", "STRATEGY__COMBINED__ENABLED": "false", "STRATEGY__BB_REVERSION__ENABLED": "false",
        "TA_RSI_PERIOD": "4", "STRATEGY__RSI_DEFAULT__PRESET": "aggressive", "TA_BB_PERIOD": "5", "TA_BB_STDDEV": "1",
        "EXECUTION_HTTP_TIMEOUT": str(CLIENT_TIMEOUT), "EXECUTION_RECV_WINDOW": "2", "EXECUTION_UNKNOWN_MARGIN": "1",
        "EXECUTION_RECONCILE_INTERVAL": "3", "EXECUTION_DRIFT_INTERVAL": "3", "EXECUTION_RATE_LIMIT_BACKOFF": "0.2",
    }


async def scalar(run: SystemRun, sql: str) -> Any:
    async with run.engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


async def rows(run: SystemRun, sql: str) -> list[Any]:
    async with run.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


def posts_to_orders(fake: FakeBinance) -> int:
    return sum(1 for r in fake.requests if r.path == ORDER and r.method == "POST")


async def inject_faults(fake: FakeBinance, run: SystemRun, stop: asyncio.Event) -> list[str]:
    """Before each new order the system sends, arm the next fault of the cycle; SIGKILL
    execution (and restart it) once, right after a send the server held unanswered."""
    cycle: list[tuple[str, Callable[[], None]]] = [
        ("held answer (placed)", lambda: fake.hold_next(1, CLIENT_TIMEOUT + 1.5)),
        ("-1007, placed later", lambda: fake.account.defer_next(1, 1.0)),
        ("503 before placing", lambda: fake.fail_next(1, 503, path=ORDER, method="POST")),
        ("429", lambda: fake.fail_next(1, 429, retry_after=0.5, path=ORDER, method="POST")),
        ("418", lambda: fake.fail_next(1, 418, retry_after=0.5, path=ORDER, method="POST")),
    ]
    armed: list[str] = []
    killed = False
    seen = posts_to_orders(fake)
    while not stop.is_set():
        if posts_to_orders(fake) > seen and len(armed) < 3 * len(cycle):
            name, arm = cycle[len(armed) % len(cycle)]
            arm()
            armed.append(name)
            seen = posts_to_orders(fake)
            if name.startswith("held") and not killed and len(armed) > len(cycle):
                # Wait for the held send to arrive, then kill execution while it waits for the answer.
                deadline = time.monotonic() + 30
                while posts_to_orders(fake) == seen and time.monotonic() < deadline and not stop.is_set():
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                run.kill("execution", signal.SIGKILL)
                run.restart("execution")
                killed = True
                armed.append("SIGKILL execution")
                seen = posts_to_orders(fake)
        await asyncio.sleep(0.05)
    return armed


async def test_live_soak_loses_and_doubles_nothing(make_system: Any, probe: QueueProbe) -> None:
    candles = replay_slice()[: HISTORY + LIVE]
    async with FakeBinance(interval="1s", balances={"USDT": "10000"}, live=True) as fake:
        run: SystemRun = await make_system(**live_env(fake.url))
        run.start("execution")
        # Execution seeds the ledger from the exchange before anything is decided.
        await run.wait(lambda: _seeded(run), timeout=60, what="the ledger seeded from the exchange")
        await run.start_consumers(probe.consumers)
        # The market starts now (whatever the agents' start-up took): HISTORY candles closed
        # already, then one a second.
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=HISTORY)
        fake.add_klines("BTC/USDT", klines_from_candles(candles, start, "1s"))
        run.start("data_collection")
        stop = asyncio.Event()
        faults = asyncio.create_task(inject_faults(fake, run, stop))
        end = start + timedelta(seconds=HISTORY + LIVE + 2)
        await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
        stop.set()
        armed = await faults
        run.kill("data_collection", signal.SIGTERM)
        await run.wait_settled(probe.depth, timeout=60)
        # The last balance comparison after everything settled.
        await asyncio.sleep(4)

        approvals = await scalar(run, "SELECT count(*) FROM risk_decisions WHERE decision = 'APPROVED'")
        statuses = dict(await rows(run, "SELECT status, count(*) FROM orders GROUP BY status"))
        ledger = {a: t for a, t in await rows(run, "SELECT asset, total FROM balances") if t != 0}
        stale = await scalar(run, "SELECT count(*) FROM risk_decisions WHERE reason = 'STALE_SIGNAL'")
        drift = await rows(run, "SELECT drifted, detail FROM balance_drift")
        dead = await probe.dead_letters(run.topology)
        detail = f"faults {armed}; orders {statuses}; approvals {approvals}; server orders {len(fake.account.orders)}"

        print(detail)  # what the soak went through (pytest -s shows it)
        assert approvals >= 3, detail  # the soak traded
        assert "SIGKILL execution" in armed and len(armed) >= 6, detail
        # No double order: one accepted order per approval, none lost or refused.
        assert len(fake.account.orders) == approvals, detail
        assert len({o.client_order_id for o in fake.account.orders}) == approvals, detail
        assert statuses == {"FILLED": approvals}, detail
        # The server's own account equals the ledger, asset by asset, exactly.
        assert ledger == fake.account.totals(), detail
        assert drift == [(False, None)], detail
        assert stale > 0, "the backfilled history was decided as if it were live"
        assert dead == {}, detail
        assert not [c for c in run.crashed() if not c.startswith("data_collection exited 0")]


async def _seeded(run: SystemRun) -> bool:
    return bool(await scalar(run, "SELECT count(*) FROM balances"))
