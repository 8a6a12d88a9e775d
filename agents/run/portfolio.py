"""The final portfolio, read from the ledger in Postgres (balances, positions, counts).

The ledger's tables belong to the risk manager and execution agents (migrations 0002, 0003).
This reader does not depend on their exact columns: it prints whatever the tables hold, and
sums ``realised_pnl``/``fees`` when a positions table has them. A table that does not exist
(an agent not built yet) is reported as missing, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg

from agents.run.plan import asyncpg_dsn

PORTFOLIO_TABLES = ("balances", "positions")
COUNTED_TABLES = ("orders", "fills", "reservations")
_MAX_ROWS = 200


@dataclass(frozen=True)
class TableDump:
    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


@dataclass
class Portfolio:
    """Balances and positions as stored, plus row counts of the other ledger tables."""

    tables: list[TableDump] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def column_sum(self, table: str, column: str) -> Decimal | None:
        for dump in self.tables:
            if dump.name == table and column in dump.columns:
                index = dump.columns.index(column)
                return sum((Decimal(str(row[index])) for row in dump.rows if row[index] is not None), Decimal(0))
        return None

    @property
    def realised_pnl(self) -> Decimal | None:
        return self.column_sum("positions", "realised_pnl")


async def _exists(connection: asyncpg.Connection, table: str) -> bool:
    return bool(await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{table}"))


async def read_portfolio(database_url: str) -> Portfolio:
    dsn = asyncpg_dsn(database_url)
    connection = await asyncpg.connect(dsn)
    portfolio = Portfolio()
    try:
        for table in PORTFOLIO_TABLES:
            if not await _exists(connection, table):
                portfolio.missing.append(table)
                continue
            # Table names are constants above, never user input.
            records = await connection.fetch(f"SELECT * FROM {table} ORDER BY 1 LIMIT {_MAX_ROWS}")
            columns = tuple(records[0].keys()) if records else await _columns(connection, table)
            portfolio.tables.append(TableDump(table, columns, tuple(tuple(r.values()) for r in records)))
        for table in COUNTED_TABLES:
            if await _exists(connection, table):
                portfolio.counts[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await connection.close()
    return portfolio


async def _columns(connection: asyncpg.Connection, table: str) -> tuple[str, ...]:
    rows = await connection.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 "
        "ORDER BY ordinal_position",
        table,
    )
    return tuple(r["column_name"] for r in rows)
