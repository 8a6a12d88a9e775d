"""The live account: seeding the ledger from the exchange, the ledger-versus-exchange drift,
and the deployment's salt for client order ids (``protocol.client_order_id_for``).

In sandbox and live mode the exchange's balances are the truth the ledger must follow. At start
an empty ledger is seeded with them (every asset the account holds); then they are compared
periodically (execution holds the API keys, so it does both). A difference beyond the tolerance
is recorded in ``balance_drift``: the risk manager refuses new BUYs (LEDGER_DRIFT), the reality
check FAILs and the execution heartbeat shows it, until an operator acknowledges it with
``tradebus drift ack`` (runbook). A new, different drift needs a new acknowledgement.

The comparison is skipped while orders are in flight (open reservations): an order that filled
at the exchange but whose report is not settled yet is a difference of timing, not a drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db.ledger import Ledger
from infra.db.models import BalanceDrift, Deployment
from infra.logging import get_logger

__all__ = [
    "DriftState",
    "acknowledge",
    "check_drift",
    "compare",
    "deployment_salt",
    "drift_command",
    "drift_state",
    "seed_from_exchange",
]

_log = get_logger(component="ledger_drift")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class DriftState:
    """The latest comparison: ``blocking`` while drifted and not acknowledged."""

    drifted: bool
    detail: str | None
    checked_at: datetime | None
    acknowledged: bool

    @property
    def blocking(self) -> bool:
        return self.drifted and not self.acknowledged


def compare(ledger: Mapping[str, Decimal], exchange: Mapping[str, Decimal], tolerance: Decimal) -> dict[str, dict[str, str]]:
    """Assets whose ledger total and exchange total differ by more than ``tolerance`` (a
    fraction of the larger of the two); asset -> {"ledger", "exchange"} as text decimals."""
    differences: dict[str, dict[str, str]] = {}
    for asset in sorted(set(ledger) | set(exchange)):
        mine, theirs = ledger.get(asset, _ZERO), exchange.get(asset, _ZERO)
        if abs(mine - theirs) > tolerance * max(abs(mine), abs(theirs)):
            differences[asset] = {"ledger": str(mine), "exchange": str(theirs)}
    return differences


def _describe(differences: Mapping[str, Mapping[str, str]]) -> str:
    return "; ".join(f"{a}: ledger {d['ledger']}, exchange {d['exchange']}" for a, d in differences.items())


async def seed_from_exchange(ledger: Ledger, exchange_balances: Mapping[str, Decimal]) -> bool:
    """Seed an empty ledger with the exchange's balances; True if it did (never overwrites)."""
    seeded = await ledger.ensure_initial_balances({a: v for a, v in exchange_balances.items() if v > 0})
    _log.info("ledger_seeded_from_exchange" if seeded else "ledger_already_seeded",
              assets=sorted(exchange_balances))
    return seeded


async def _settled_totals(ledger: Ledger) -> dict[str, Decimal] | None:
    """The ledger's totals per asset, or None while an order is in flight."""
    if await ledger.open_reservations():
        return None
    return {asset: view.total for asset, view in (await ledger.balances()).items()}


async def check_drift(
    sessions: async_sessionmaker[AsyncSession],
    ledger: Ledger,
    exchange_balances: Callable[[], Awaitable[Mapping[str, Decimal]]],
    tolerance: Decimal,
    now: datetime | None = None,
) -> DriftState | None:
    """Compare and record; None when skipped because orders were in flight.

    The ledger is read before and after the exchange's balances: a comparison is only made when
    nothing was in flight and the ledger did not move meanwhile (an order placed, filled and
    settled in between would otherwise look like a drift)."""
    before = await _settled_totals(ledger)
    if before is None:
        return None
    exchange = await exchange_balances()
    if await _settled_totals(ledger) != before:
        return None
    now = now or datetime.now(UTC)
    differences = compare(before, exchange, tolerance)
    async with sessions.begin() as session:
        row = await session.get(BalanceDrift, 1, with_for_update=True)
        if row is None:
            row = BalanceDrift(id=1, drifted=False, differences={}, checked_at=now)
            session.add(row)
        if differences and differences != row.differences:
            # A new (or changed) drift: it needs its own acknowledgement.
            row.detected_at, row.acknowledged_at, row.acknowledged_by = now, None, None
            _log.error("ledger_drift", detail=_describe(differences))
        elif not differences:
            row.detected_at, row.acknowledged_at, row.acknowledged_by = None, None, None
        row.drifted, row.differences, row.checked_at = bool(differences), differences, now
        row.detail = _describe(differences) if differences else None
        return DriftState(row.drifted, row.detail, now, row.acknowledged_at is not None)


async def drift_state(sessions: async_sessionmaker[AsyncSession]) -> DriftState:
    """The recorded state (not drifted when never checked: paper mode never checks)."""
    async with sessions() as session:
        row = await session.get(BalanceDrift, 1)
    if row is None:
        return DriftState(False, None, None, False)
    return DriftState(row.drifted, row.detail, row.checked_at, row.acknowledged_at is not None)


async def acknowledge(sessions: async_sessionmaker[AsyncSession], by: str, now: datetime | None = None) -> DriftState:
    """An operator accepts the recorded drift: BUYs resume until the drift changes."""
    async with sessions.begin() as session:
        statement = (
            insert(BalanceDrift)
            .values(id=1, drifted=False, differences={}, checked_at=now or datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["id"])
        )
        await session.execute(statement)
        row = await session.get(BalanceDrift, 1, with_for_update=True)
        assert row is not None
        if row.drifted:
            row.acknowledged_at, row.acknowledged_by = now or datetime.now(UTC), by
            _log.warning("ledger_drift_acknowledged", by=by, detail=row.detail)
        return DriftState(row.drifted, row.detail, row.checked_at, row.acknowledged_at is not None)


async def deployment_salt(sessions: async_sessionmaker[AsyncSession]) -> str:
    """This database's salt for client order ids (created by migration 0004)."""
    async with sessions() as session:
        salt = await session.scalar(select(Deployment.salt).where(Deployment.id == 1))
    if salt is None:
        raise RuntimeError("the deployment row is missing: run `tradebus migrate`")
    return salt


async def drift_command(action: str, by: str) -> tuple[str, bool]:
    """``tradebus drift show|ack`` on DATABASE_URL: the text to print and whether BUYs are stopped."""
    from infra.db import create_engine, session_factory
    from infra.settings import Settings

    engine = create_engine(Settings().database_url.get_secret_value())
    try:
        sessions = session_factory(engine)
        state = await acknowledge(sessions, by) if action == "ack" else await drift_state(sessions)
    finally:
        await engine.dispose()
    if not state.drifted:
        checked = state.checked_at.isoformat() if state.checked_at else "never (paper mode, or execution not started)"
        return f"no ledger drift (last compared: {checked})", False
    verdict = f"acknowledged by {by}; BUYs resume" if action == "ack" else (
        "acknowledged" if state.acknowledged else "NOT acknowledged: new BUYs are refused (LEDGER_DRIFT)")
    return f"ledger drift: {state.detail} — {verdict}", state.blocking
