"""A proposal is a Signal like any strategy's, under the server's own strategy id.

``proposal_signal`` (pure) builds it on the newest stored candle of the series: that candle's
open time and close are the signal's ``candle_time`` and ``price``, exactly what a strategy
deciding on that candle would send. The risk manager then decides it with the same checks as
every other signal (rules.evaluate); ``outcome`` reads the decision back from the ledger's
audit, which the risk manager commits before it publishes anything, so the answer is the
decision itself, never a guess from the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar
from uuid import UUID

from infra.db.ledger import DecisionKind, DecisionView, Ledger, jsonable
from protocol import Candle, Signal

__all__ = ["MCP_SOURCE", "STRATEGY_KIND", "Outcome", "outcome_of", "poll", "proposal_signal", "signal_dict", "wait_for_decision"]

T = TypeVar("T")

MCP_SOURCE = "mcp"
# The Signal's ``strategy`` (kind) field: a proposal follows no built-in strategy.
STRATEGY_KIND = "mcp"
Outcome = Literal["APPROVED", "REJECTED", "IGNORED", "PENDING"]


def proposal_signal(
    candle: Candle, *, strategy_id: str, side: str, confidence: float, reason: str
) -> Signal:
    """The Signal a proposal publishes: a fresh chain (new message and correlation ids), on
    ``candle`` (the newest stored one), from ``strategy_id`` (``mcp-<client>``)."""
    return Signal(
        source=MCP_SOURCE,
        strategy_id=strategy_id,
        strategy=STRATEGY_KIND,
        exchange=candle.exchange,
        symbol=candle.symbol,
        timeframe=candle.timeframe,
        side=side,
        confidence=confidence,
        reason=reason,
        indicators={},
        candle_time=candle.open_time,
        price=candle.close,
    )


def signal_dict(signal: Signal) -> dict[str, Any]:
    return jsonable({
        "signal_id": signal.message_id, "strategy_id": signal.strategy_id, "exchange": signal.exchange,
        "symbol": signal.symbol, "timeframe": signal.timeframe, "side": signal.side, "confidence": signal.confidence,
        "reason": signal.reason, "candle_time": signal.candle_time, "price": signal.price,
    })


async def poll(fetch: Callable[[], Awaitable[T | None]], timeout: float) -> T | None:
    """``fetch()`` until it answers something (not None, not empty), at most ``timeout`` seconds;
    the last answer (None or empty) when the bound passes. Backs off from 50 ms to 0.5 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.05
    while True:
        found = await fetch()
        left = deadline - loop.time()
        if found or left <= 0:
            return found
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.5)


async def wait_for_decision(ledger: Ledger, signal_id: UUID, timeout: float) -> DecisionView | None:
    """The risk manager's audited decision on ``signal_id``, waiting up to ``timeout`` seconds.

    None when it is not decided within the bound (the risk manager down, or waiting for other
    orders to settle, RISK_SETTLE_WAIT): the caller answers PENDING, never a made-up outcome."""
    return await poll(lambda: ledger.decision(signal_id), timeout)


def outcome_of(decision: DecisionView | None) -> Outcome:
    if decision is None:
        return "PENDING"
    return {DecisionKind.APPROVED: "APPROVED", DecisionKind.REJECTED: "REJECTED"}.get(decision.decision, "IGNORED")  # type: ignore[return-value]
