"""The MCP server's process: an agent (bus, heartbeats, health) that reads the stores, listens
for the agents' heartbeats, and publishes only proposals and emergency-stop requests.

Broker role ``mcp`` (decision 0011/0020): it may publish ``strategy.signal.mcp-*`` and
``control.#`` (and its own heartbeat), nothing else; it listens on a private auto-delete queue.
Every tool of ``agents/mcp/server.py`` is a method here, so the tools stay a thin layer.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from agents.mcp import reads
from agents.mcp.backtests import stored_backtest
from agents.mcp.proposals import MCP_SOURCE, outcome_of, poll, proposal_signal, signal_dict, wait_for_decision
from agents.mcp.settings import McpSettings
from agents.ops.controls import ControlKind, build_control, publish_control
from agents.runtime import Agent
from agents.runtime.registry import AGENTS
from agents.technical_analysis.settings import TechnicalAnalysisSettings
from infra.db import DatabaseNotMigrated, ensure_migrated, read_only_engine, session_factory
from infra.db.controls import read_controls
from infra.db.ledger import Ledger, jsonable
from infra.influx import from_settings
from protocol import Heartbeat, topics
from protocol.codec import MessageDecodeError, decode

__all__ = ["McpService", "ProposalRefused"]

# The agents whose health the health tool reports, by their heartbeat name.
# Seconds the stop request waits for the agents' record of it (the answer says when it is not there yet).
_STOP_RECORD_WAIT = 5.0
AGENT_NAMES = tuple(entry.package.rsplit(".", 1)[-1] for entry in AGENTS.values())


STORE_TIMEOUT = 10.0  # seconds: connect, each statement, waiting for a pooled connection


class ProposalRefused(ValueError):
    """Nothing was published: the proposal cannot become a valid signal (the text says why)."""


class McpService(Agent):
    """Reads for the read tools; proposals and stop requests for the acting tools."""

    name = "mcp"
    settings_class = McpSettings
    settings: McpSettings

    async def setup(self) -> None:
        s = self.settings
        # Read-only and bounded: the server only reads the ledger (its acts are bus messages), and a
        # stuck Postgres must fail a tool call with a reason, not hang the assistant's session.
        self.engine = read_only_engine(s.database_url.get_secret_value(), STORE_TIMEOUT)
        self.store = from_settings(s)
        self.beats: dict[str, Heartbeat] = {}
        self.listening_since = datetime.now(UTC)
        self.counts = {"proposals": 0, "stop_requests": 0}
        self._channel: AbstractChannel | None = None
        try:
            await ensure_migrated(self.engine)
        except DatabaseNotMigrated as exc:
            print(f"tradebus mcp: {exc}", file=sys.stderr)
            self.fail(f"database not migrated: {exc}")
            return
        self.sessions = session_factory(self.engine)
        self.ledger = Ledger(self.sessions)
        self.indicator_base = TechnicalAnalysisSettings().indicator_params()
        await self._listen_for_heartbeats()

    async def _listen_for_heartbeats(self) -> None:
        # A private auto-delete queue (role mcp may declare those): the monitor queue's beats are
        # the run panel's, and taking them from there would starve it. The robust channel
        # re-declares and re-binds it after a broker restart.
        channel = await self.bus.connection.channel()
        self._channel = channel
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(self.bus.topology.exchange, routing_key=topics.ALL_HEARTBEATS)
        await queue.consume(self._on_heartbeat, no_ack=True)

    async def _on_heartbeat(self, message: AbstractIncomingMessage) -> None:
        with contextlib.suppress(MessageDecodeError):
            beat = decode(message.body, Heartbeat)
            known = self.beats.get(beat.agent)
            if known is None or beat.produced_at >= known.produced_at:
                self.beats[beat.agent] = beat

    async def teardown(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        await self.store.close()
        await self.engine.dispose()

    def heartbeat_detail(self) -> dict[str, str]:
        return {key: str(value) for key, value in self.counts.items()}

    # --- read tools ------------------------------------------------------------------------
    def _series(self, symbol: str | None, timeframe: str | None) -> tuple[str, str, str]:
        s = self.settings
        return s.exchange, (symbol or s.symbols[0]).upper(), timeframe or s.timeframe

    async def price(self, symbol: str | None, timeframe: str | None, candles: int) -> dict[str, Any]:
        exchange, symbol, timeframe = self._series(symbol, timeframe)
        rows = await self.store.last_candles(exchange, symbol, timeframe, min(candles, self.settings.mcp_max_rows))
        latest = rows[-1] if rows else None
        return {
            "exchange": exchange, "symbol": symbol, "timeframe": timeframe,
            "price": None if latest is None else str(latest.close),
            "as_of": None if latest is None else latest.close_time.isoformat(),
            "candles": [reads.candle_dict(c) for c in rows],
            "note": None if rows else "no stored candle for this series: no price (none is ever made up)",
        }

    async def indicators(self, symbol: str | None, timeframe: str | None) -> dict[str, Any]:
        exchange, symbol, timeframe = self._series(symbol, timeframe)
        snapshot = await self.store.latest_indicators(exchange, symbol, timeframe)
        return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe,
                "latest": None if snapshot is None else reads.indicators_dict(snapshot)}

    async def account(self, strategy_id: str | None) -> dict[str, Any]:
        return await reads.account(self.ledger, strategy_id)

    async def open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        return await reads.open_orders(self.sessions, self.settings.mcp_max_rows, symbol.upper() if symbol else None)

    async def fills(self, symbol: str | None, strategy_id: str | None, limit: int) -> list[dict[str, Any]]:
        return await reads.recent_fills(self.sessions, min(limit, self.settings.mcp_max_rows),
                                        symbol.upper() if symbol else None, strategy_id)

    async def decisions(self, strategy_id: str | None, decision: str | None, signal_id: UUID | None,
                        limit: int) -> list[dict[str, Any]]:
        if signal_id is not None:
            view = await self.ledger.decision(signal_id)
            return [] if view is None else [reads.decision_dict(view)]
        return await reads.recent_decisions(self.sessions, min(limit, self.settings.mcp_max_rows),
                                            strategy_id=strategy_id, decision=decision)

    def agents_health(self) -> dict[str, Any]:
        """The newest heartbeat heard from each agent since this server started listening."""
        now = datetime.now(UTC)
        stale_after = 3 * self.settings.heartbeat_interval
        agents: dict[str, Any] = {}
        for name in (*AGENT_NAMES, *sorted(set(self.beats) - set(AGENT_NAMES))):
            beat = self.beats.get(name)
            if beat is None:
                agents[name] = {"agent": name, "health": "NO_HEARTBEAT",
                                "problems": f"no heartbeat heard since {self.listening_since.isoformat()}"}
                continue
            entry = reads.heartbeat_dict(beat, (now - beat.produced_at).total_seconds())
            entry["stale"] = entry["age_seconds"] > stale_after
            agents[name] = entry
        return {"listening_since": self.listening_since.isoformat(), "stale_after_seconds": stale_after, "agents": agents}

    async def backtest(self, *, strategy: str, symbol: str | None, timeframe: str | None, candles: int,
                       start: datetime | None, end: datetime | None, params: dict[str, Any],
                       fraction: Decimal | None, cash: Decimal, risk_limits: bool = True) -> dict[str, Any]:
        exchange, symbol, timeframe = self._series(symbol, timeframe)
        return await stored_backtest(
            self.store, strategy=strategy, exchange=exchange, symbol=symbol, timeframe=timeframe, candles=candles,
            start=start, end=end, params=params, fraction=fraction, cash=cash, risk_limits=risk_limits,
            max_candles=self.settings.mcp_backtest_max_candles, indicator_base=self.indicator_base,
        )

    # --- acting tools: propose, never place ------------------------------------------------
    async def propose(self, *, symbol: str, side: str, confidence: float, reason: str,
                      timeframe: str | None, wait: float | None) -> dict[str, Any]:
        """Publish a Signal of strategy ``mcp-<client>`` and return the risk manager's decision."""
        exchange, symbol, timeframe = self._series(symbol, timeframe)
        candle = await self.store.latest_candle(exchange, symbol, timeframe)
        if candle is None:
            raise ProposalRefused(f"no stored {timeframe} candle of {symbol} on {exchange}: nothing to propose on")
        try:
            signal = proposal_signal(candle, strategy_id=self.settings.strategy_id, side=side,
                                     confidence=confidence, reason=reason)
        except ValueError as exc:
            raise ProposalRefused(str(exc)) from None
        await self.bus.publish(signal)
        self.counts["proposals"] += 1
        self.log.info("signal proposed", signal_id=str(signal.message_id), strategy_id=signal.strategy_id,
                      symbol=symbol, side=side, confidence=confidence)
        timeout = min(wait, self.settings.mcp_decision_timeout) if wait is not None else self.settings.mcp_decision_timeout
        decision = await wait_for_decision(self.ledger, signal.message_id, timeout)
        answer: dict[str, Any] = {"outcome": outcome_of(decision), "signal": signal_dict(signal)}
        if decision is None:
            answer["detail"] = (f"not decided within {timeout:.0f}s (is the risk manager running? it may be waiting for "
                                f"open orders to settle); ask risk_decisions with signal_id={signal.message_id}")
            return answer
        answer |= {k: v for k, v in reads.decision_dict(decision).items() if k in ("reason", "detail", "decided_at", "order")}
        if decision.client_order_id is not None:
            answer["order_status"] = await reads.order_status(self.sessions, decision.client_order_id)
        return answer

    async def request_emergency_stop(self, reason: str) -> dict[str, Any]:
        """Ask for the stop (control.emergency_stop, engaged) through the one controls module, and
        return what the agents recorded of it within a few seconds. Releasing stays with a person."""
        message = build_control(ControlKind.ENGAGE_STOP, reason=reason, requested_by=self.settings.strategy_id,
                                source=MCP_SOURCE)
        await publish_control(self.bus, message)
        self.counts["stop_requests"] += 1
        self.log.warning("emergency stop requested", reason=reason, message_id=str(message.message_id))
        recorded = await poll(lambda: read_controls(self.sessions, message_id=message.message_id), _STOP_RECORD_WAIT)
        return {
            "requested": True, "message_id": str(message.message_id), "reason": reason,
            "requested_by": self.settings.strategy_id,
            "recorded": [jsonable({"agent": r.agent, "outcome": r.outcome, "detail": r.detail, "received_at": r.received_at})
                         for r in recorded or []],
            "note": "the risk manager and execution apply it from the bus (an empty 'recorded' means not yet); "
                    "only a person releases it: `tradebus emergency-stop off`",
        }
