"""`tradebus drift` / `tradebus drift ack` on a real Postgres ledger: a recorded drift stops
BUYs (exit 1) until an operator acknowledges it; a new, different drift needs a new one."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest
from typer.testing import CliRunner

from agents.cli import app
from infra.db import create_engine, session_factory, upgrade_head
from infra.db.ledger import Ledger
from infra.exchanges.account import check_drift, drift_state

pytestmark = pytest.mark.integration


async def test_a_drift_blocks_until_acknowledged_and_a_new_drift_blocks_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    await upgrade_head(postgres_url)
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    ledger = Ledger(sessions)
    try:
        await ledger.ensure_initial_balances({"USDT": D("1000")})

        async def exchange(amount: str) -> dict[str, D]:
            return {"USDT": D(amount)}

        never = await asyncio.to_thread(CliRunner().invoke, app, ["drift"])
        assert never.exit_code == 0 and "no ledger drift" in never.output
        state = await check_drift(sessions, ledger, lambda: exchange("990"), D("0.0001"))
        assert state is not None and state.blocking
        shown = await asyncio.to_thread(CliRunner().invoke, app, ["drift"])
        assert shown.exit_code == 1 and "USDT: ledger 1000, exchange 990" in shown.output
        acked = await asyncio.to_thread(CliRunner().invoke, app, ["drift", "ack", "--by", "ops"])
        assert acked.exit_code == 0 and "acknowledged by ops" in acked.output
        # The same differences again: still acknowledged. Different ones: blocking again.
        assert not (await check_drift(sessions, ledger, lambda: exchange("990"), D("0.0001"))).blocking  # type: ignore[union-attr]
        assert (await check_drift(sessions, ledger, lambda: exchange("980"), D("0.0001"))).blocking  # type: ignore[union-attr]
        # Equal again: no drift, nothing to acknowledge.
        await check_drift(sessions, ledger, lambda: exchange("1000"), D("0.0001"))
        assert not (await drift_state(sessions)).drifted
    finally:
        await engine.dispose()
