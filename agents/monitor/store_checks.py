"""Reality checks on the stores: price freshness in InfluxDB, the ledger's books in Postgres.

The ledger checks are plain SQL over the tables, on purpose: they judge the database itself,
not what the agents' code believes it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.monitor.probes import RUN_HINT
from agents.monitor.report import Check, fail, ok, warn
from infra.influx import InfluxPriceStore, PriceStoreError, PriceStoreUnavailable
from protocol import OrderStatus

__all__ = ["ledger_checks", "price_checks"]

_TERMINAL = tuple(status.value for status in OrderStatus if status.is_terminal)
_STALE_REASONS = ("STALE_PRICE", "NO_PRICE")


async def price_checks(
    store: InfluxPriceStore,
    exchange: str,
    symbols: Sequence[str],
    timeframe: str,
    *,
    max_age: timedelta | None,
) -> list[Check]:
    """Latest stored candle per symbol; ``max_age`` None (replay) checks presence, not wall-clock age."""
    checks: list[Check] = []
    for symbol in symbols:
        name = f"{exchange} {symbol} {timeframe}"
        try:
            candle = await store.latest_candle(exchange, symbol, timeframe)
        except PriceStoreError as exc:
            checks.append(_price_store_failure(name, store.database, exc))
            continue
        if candle is None:
            checks.append(fail("prices", name, "no candle", "nothing stored for this market"))
            continue
        latest = f"latest {candle.open_time:%Y-%m-%d %H:%M}Z"
        if max_age is None:
            checks.append(ok("prices", name, latest, "replay: age against wall clock not meaningful"))
            continue
        age = await store.latest_candle_age(exchange, symbol, timeframe)
        if age is None or age > max_age:
            checks.append(fail("prices", name, f"{latest}, age {age}", f"older than {max_age}"))
        else:
            checks.append(ok("prices", name, f"{latest}, age {age}"))
    return checks


def _price_store_failure(name: str, database: str, exc: PriceStoreError) -> Check:
    text = str(exc)
    if "database not found" in text:
        return fail("prices", name, "no database",
                    f"no InfluxDB database `{database}`: is the system running? {RUN_HINT}")
    figure = "unreachable" if isinstance(exc, PriceStoreUnavailable) else "refused"
    return fail("prices", name, figure, f"{text[:200]}; is InfluxDB running? (INFLUXDB_URL)")


async def _rows(engine: AsyncEngine, sql: str, **params: object) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        result = await connection.execute(text(sql), params)
        return [tuple(row) for row in result.all()]


async def ledger_checks(engine: AsyncEngine, *, order_grace: timedelta) -> list[Check]:
    """Leaks, unreported orders, the balance invariant, positions against fills, rejections."""
    try:
        return [
            await _reservation_leaks(engine),
            *await _order_checks(engine, order_grace),
            *await _balance_checks(engine),
            await _positions_match_fills(engine),
            *await _rejection_checks(engine),
            await _balance_drift(engine),
        ]
    except asyncpg.InvalidCatalogNameError as exc:  # raised by connect, not wrapped by SQLAlchemy
        return [fail("ledger", "database", "missing", f"{str(exc).splitlines()[0]}: is the system running? {RUN_HINT}")]
    except (ProgrammingError, DBAPIError) as exc:
        # Missing tables mean the database was never migrated: that is the finding.
        first_line = str(exc.orig or exc).splitlines()[0][:200]
        if "relation" in first_line and "does not exist" in first_line:
            first_line += " — run `tradebus migrate`"
        elif "database" in first_line and "does not exist" in first_line:
            return [fail("ledger", "database", "missing", f"{first_line}: is the system running? {RUN_HINT}")]
        return [fail("ledger", "database", "unusable", first_line)]


async def _balance_drift(engine: AsyncEngine) -> Check:
    """Sandbox/live: the last ledger-versus-exchange comparison by execution (issue 14)."""
    rows = await _rows(engine, "SELECT drifted, detail, checked_at, acknowledged_by FROM balance_drift WHERE id = 1")
    if not rows:
        return ok("ledger", "balances vs exchange", "not compared", "paper mode, or execution has not compared yet")
    drifted, detail, checked_at, acknowledged_by = rows[0]
    if not drifted:
        return ok("ledger", "balances vs exchange", "equal", f"compared {checked_at}")
    if acknowledged_by is not None:
        return warn("ledger", "balances vs exchange", "drift acknowledged", f"by {acknowledged_by}: {detail}")
    return fail("ledger", "balances vs exchange", "drift", f"{detail}; BUYs stopped until `tradebus drift ack`")


async def _reservation_leaks(engine: AsyncEngine) -> Check:
    rows = await _rows(
        engine,
        "SELECT client_order_id, status, expires_at FROM reservations "
        "WHERE status IN ('HELD', 'PARTIALLY_SETTLED') AND expires_at < now() ORDER BY expires_at",
    )
    if not rows:
        return ok("ledger", "reservations past their deadline", 0)
    sample = ", ".join(str(row[0]) for row in rows[:3])
    return fail("ledger", "reservations past their deadline", len(rows), f"leaked: {sample}")


async def _order_checks(engine: AsyncEngine, grace: timedelta) -> list[Check]:
    never_placed = await _rows(
        engine,
        "SELECT r.client_order_id FROM reservations r LEFT JOIN orders o USING (client_order_id) "
        "WHERE o.client_order_id IS NULL AND r.created_at < now() - CAST(:grace AS interval) "
        "AND r.status IN ('HELD', 'PARTIALLY_SETTLED')",
        grace=grace,
    )
    open_rows = await _rows(
        engine,
        "SELECT status, count(*) FROM orders WHERE NOT (status = ANY(:terminal)) GROUP BY status ORDER BY status",
        terminal=list(_TERMINAL),
    )
    checks: list[Check] = []
    if never_placed:
        sample = ", ".join(str(row[0]) for row in never_placed[:3])
        checks.append(fail("orders", "approved but never reached execution", len(never_placed), sample))
    else:
        checks.append(ok("orders", "approved but never reached execution", 0))
    by_status = {str(status): int(count) for status, count in open_rows}  # type: ignore[call-overload]
    unknown = by_status.pop(OrderStatus.UNKNOWN.value, 0)
    if unknown:
        checks.append(fail("orders", "outcome UNKNOWN", unknown, "execution must reconcile these"))
    else:
        checks.append(ok("orders", "outcome UNKNOWN", 0))
    resting = sum(by_status.values())
    detail = ", ".join(f"{status} {count}" for status, count in by_status.items())
    checks.append(
        (warn if resting else ok)("orders", "without a terminal report", resting, detail or "all terminal")
    )
    return checks


async def _balance_checks(engine: AsyncEngine) -> list[Check]:
    broken = await _rows(
        engine,
        "SELECT asset, total, available, reserved FROM balances "
        "WHERE available + reserved <> total OR available < 0 OR reserved < 0",
    )
    checks = [
        fail("ledger", "available + reserved = total", f"{len(broken)} assets", str(broken[:3]))
        if broken
        else ok("ledger", "available + reserved = total", "holds for every asset")
    ]
    mismatched = await _rows(
        engine,
        "SELECT b.asset, b.reserved, coalesce(sum(r.remaining), 0) FROM balances b "
        "LEFT JOIN reservations r ON r.asset = b.asset AND r.status IN ('HELD', 'PARTIALLY_SETTLED') "
        "GROUP BY b.asset, b.reserved HAVING b.reserved <> coalesce(sum(r.remaining), 0)",
    )
    checks.append(
        fail("ledger", "reserved = open reservations", f"{len(mismatched)} assets", str(mismatched[:3]))
        if mismatched
        else ok("ledger", "reserved = open reservations", "holds for every asset")
    )
    return checks


async def _positions_match_fills(engine: AsyncEngine) -> Check:
    rows = await _rows(
        engine,
        "WITH f AS (SELECT strategy_id, exchange, symbol, "
        "  sum(CASE WHEN side = 'BUY' THEN quantity ELSE -quantity END) AS net FROM fills "
        "  GROUP BY strategy_id, exchange, symbol) "
        "SELECT coalesce(p.strategy_id, f.strategy_id), coalesce(p.symbol, f.symbol), "
        "  coalesce(p.quantity, 0), coalesce(f.net, 0) "
        "FROM positions p FULL OUTER JOIN f USING (strategy_id, exchange, symbol) "
        "WHERE coalesce(p.quantity, 0) <> coalesce(f.net, 0)",
    )
    count = await _rows(engine, "SELECT count(*) FROM positions WHERE quantity <> 0")
    if rows:
        return fail("ledger", "positions = sum of fills", f"{len(rows)} differ", str(rows[:3]))
    return ok("ledger", "positions = sum of fills", f"{count[0][0]} open positions agree")


async def _rejection_checks(engine: AsyncEngine) -> list[Check]:
    rows = await _rows(
        engine,
        "SELECT decision, coalesce(reason, ''), count(*) FROM risk_decisions "
        "GROUP BY decision, reason ORDER BY decision, count(*) DESC",
    )
    decided = {str(d): 0 for d in ("APPROVED", "REJECTED", "IGNORED")}
    reasons: dict[str, int] = {}
    for decision, reason, n in rows:
        decided[str(decision)] = decided.get(str(decision), 0) + int(n)  # type: ignore[call-overload]
        if decision == "REJECTED":
            reasons[str(reason)] = int(n)  # type: ignore[call-overload]
    figure = ", ".join(f"{k.lower()} {v}" for k, v in decided.items())
    detail = ", ".join(f"{reason} {n}" for reason, n in reasons.items()) or "none"
    checks = [ok("risk", "decisions", figure, f"rejections by reason: {detail}")]
    stale = sum(n for reason, n in reasons.items() if reason in _STALE_REASONS)
    checks.append(
        (warn if stale else ok)("risk", "stale or missing price rejections", stale, "no price is ever made up")
    )
    return checks
