"""What the read tools answer, as JSON-ready dicts (Decimals as exact strings).

Balances, positions, the risk state and one decision come from the ledger's own read methods
(``Ledger``); fills, decisions and orders from the console's list queries (``agents.api.queries``).
Every list is newest first and bounded by ``limit``. Nothing here
writes: the MCP server never touches the ledger except through a proposal the risk manager
decides.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.api.queries import LedgerReads, OrderFilter, TimeRange
from infra.db.ledger import Ledger, jsonable
from infra.db.ledger.types import DecisionView
from protocol import Candle, Heartbeat, IndicatorSnapshot

__all__ = [
    "account",
    "candle_dict",
    "decision_dict",
    "heartbeat_dict",
    "indicators_dict",
    "open_orders",
    "recent_decisions",
    "recent_fills",
]



def candle_dict(candle: Candle) -> dict[str, Any]:
    return jsonable({
        "open_time": candle.open_time, "close_time": candle.close_time, "open": candle.open, "high": candle.high,
        "low": candle.low, "close": candle.close, "volume": candle.volume,
    })


def indicators_dict(snapshot: IndicatorSnapshot) -> dict[str, Any]:
    values = {name: value for name, value in snapshot.indicators.model_dump().items() if value is not None}
    values.update(snapshot.extra)  # the strategies' declared indicators (rsi_7, decision 0022)
    return jsonable({"candle_time": snapshot.candle_time, "close": snapshot.close, "indicators": values})


def heartbeat_dict(beat: Heartbeat, age_seconds: float) -> dict[str, Any]:
    return jsonable({
        "agent": beat.agent, "health": beat.health, "age_seconds": round(age_seconds, 1),
        "instance_id": beat.instance_id, "uptime_seconds": beat.uptime_seconds, "consumed": beat.consumed,
        "published": beat.published, "dead_lettered": beat.dead_lettered, "errors": beat.errors,
        "problems": beat.detail.get("problems"), "detail": dict(beat.detail),
    })


def decision_dict(view: DecisionView) -> dict[str, Any]:
    """A risk decision (``DecisionView``) without its bulky inputs, plus the order it sized."""
    order = view.output if view.decision.value == "APPROVED" else None
    return jsonable({
        "signal_id": view.signal_id, "strategy_id": view.strategy_id, "symbol": view.symbol, "side": view.side,
        "decision": view.decision, "reason": view.reason, "detail": view.detail, "decided_at": view.decided_at,
        "client_order_id": view.client_order_id,
        "order": None if order is None else {
            key: order.get(key) for key in ("client_order_id", "side", "quantity", "reference_price", "reserved_asset",
                                            "reserved_amount", "expires_at")
        },
    })


async def account(ledger: Ledger, strategy_id: str | None = None) -> dict[str, Any]:
    """Balances, positions (of one strategy or all) and the risk state, from one account view."""
    view = await ledger.account_view()
    positions = [p for p in view.positions if strategy_id is None or p.strategy_id == strategy_id]
    state = view.risk_state
    return jsonable({
        "balances": {asset: {"total": b.total, "available": b.available, "reserved": b.reserved}
                     for asset, b in view.balances.items()},
        "positions": [asdict(p) for p in positions],
        "risk_state": {"trading_state": state.trading_state, "reason": state.trading_state_reason,
                       "emergency_stop": state.emergency_stop, "emergency_reason": state.emergency_reason,
                       "changed_by": state.changed_by, "changed_at": state.changed_at,
                       "peak_equity": state.peak_equity},
        "open_reservations": len(view.open_reservations),
    })


async def open_orders(sessions: async_sessionmaker[AsyncSession], limit: int, symbol: str | None = None) -> list[dict[str, Any]]:
    """Orders execution holds that are not final yet (NEW, PARTIALLY_FILLED, UNKNOWN), newest first."""
    rows, _ = await LedgerReads(sessions).orders(OrderFilter(symbol=symbol, open_only=True), TimeRange(), limit, 0)
    return [jsonable({
        "client_order_id": r.client_order_id, "strategy_id": r.strategy_id, "exchange": r.exchange, "symbol": r.symbol,
        "side": r.side, "order_type": r.order_type, "quantity": r.quantity, "limit_price": r.limit_price,
        "status": r.status, "filled": r.filled, "average_price": r.average_price, "fees": r.fees,
        "expires_at": r.expires_at, "created_at": r.created_at, "updated_at": r.updated_at,
    }) for r in rows]


async def order_status(sessions: async_sessionmaker[AsyncSession], client_order_id: str) -> dict[str, Any] | None:
    """Execution's latest state of one order, or None while execution has not claimed it yet."""
    found = await LedgerReads(sessions).order(client_order_id)
    if found is None:
        return None
    row, _ = found
    return jsonable({"status": row.status, "filled": row.filled, "average_price": row.average_price,
                     "reason": row.reason, "fees": row.fees})


async def recent_fills(
    sessions: async_sessionmaker[AsyncSession], limit: int, symbol: str | None = None, strategy_id: str | None = None
) -> list[dict[str, Any]]:
    """The ledger's booked fills (one per exchange trade), newest first (the console's query)."""
    rows, _ = await LedgerReads(sessions).fills(symbol=symbol, strategy_id=strategy_id, client_order_id=None,
                                                window=TimeRange(), limit=limit, offset=0)
    return [jsonable({
        "client_order_id": r.client_order_id, "trade_id": r.trade_id, "strategy_id": r.strategy_id,
        "exchange": r.exchange, "symbol": r.symbol, "side": r.side, "quantity": r.quantity, "price": r.price,
        "fee": r.fee, "fee_currency": r.fee_currency, "filled_at": r.filled_at,
    }) for r in rows]


async def recent_decisions(
    sessions: async_sessionmaker[AsyncSession], limit: int, *, strategy_id: str | None = None, decision: str | None = None,
) -> list[dict[str, Any]]:
    """The risk decisions audit, newest first, each with its outcome, reason code and detail."""
    views, _ = await LedgerReads(sessions).decisions(decision=decision, reason=None, strategy_id=strategy_id, symbol=None,
                                                     window=TimeRange(), limit=limit, offset=0)
    return [decision_dict(view) for view in views]
