"""The risk manager agent: signals in, sized and reserved orders (or reasoned rejections) out.

Thin process around the pure modules (rules, sizing, metrics, outgoing): it reads the ledger,
the price store and the market rules, asks ``rules.evaluate``, and commits the decision in one
ledger transaction before publishing what it produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agents.risk_manager import outgoing
from agents.risk_manager.account_check import account_check
from infra.exchanges.account import deployment_salt, drift_state
from agents.risk_manager.exit_watch import ExitEnforcer, without_exit_fields
from agents.risk_manager.holdings import approved_for_candle
from agents.risk_manager.markets import MarketBook, UnknownMarket
from agents.risk_manager.metrics import account_figures, risk_metrics
from agents.risk_manager.operator import close_outcome, close_signal, close_without_price
from agents.risk_manager.prices import PriceReading, atr_at, marks, reference_price, risk_now
from agents.risk_manager.rules import Approved, Ignored, Rejected, RiskSnapshot, evaluate
from agents.risk_manager.settings import RiskSettings
from agents.risk_manager.sweeper import ExpirySweeper
from agents.risk_manager.snapshot import risk_snapshot, value_account
from agents.risk_manager.sizing import SizingMode
from agents.runtime import Agent
from infra.bus import Delivery, PublishFailed, waiting_on_other_messages
from infra.db import DatabaseNotMigrated, create_engine, ensure_migrated, read_sessions, session_factory
from infra.db.controls import PauseView
from infra.db.lease import DutyLease
from infra.db.ledger import (
    ApproveStatus,
    DecisionKind,
    Ledger,
    RiskStateView,
    position_update,
)
from infra.faults import is_transient
from infra.influx import PriceStoreError, from_settings
from infra.metrics import observe
from infra.settings import TradingMode
from protocol import (
    Candle,
    ClosePosition,
    EmergencyStop,
    ExecutionReport,
    Message,
    PauseStrategy,
    RejectionReason,
    Signal,
    SignalsDone,
    SignalSide,
    TradingState,
    client_order_id_for,
    split_symbol,
)

__all__ = ["RiskManagerAgent"]

_DAY = timedelta(days=1)
CONSUMER_SIGNALS = "risk_manager.signals"
CONSUMER_REPORTS = "risk_manager.execution_reports"
CONSUMER_CONTROL = "risk_manager.control"
# Health-problem key of an execution report the ledger could not book in full.
_UNBOOKED = "unbooked_report"


class RiskManagerAgent(Agent):
    """Approves, sizes and reserves balance for signals, or rejects them with a reason code."""

    name = "risk_manager"
    settings_class = RiskSettings
    settings: RiskSettings

    async def setup(self) -> None:
        s = self.settings
        self.engine = create_engine(s.database_url.get_secret_value())
        self.store = from_settings(s)
        self._tasks: list[asyncio.Task[None]] = []
        self._duty_problems: dict[str, str] = {}
        # The other open orders the signal being decided waits for (empty when none): shown in
        # the heartbeat, so a signal held by an unsettled order is visible rather than silent.
        self.settling_on: tuple[str, ...] = ()
        self._report_settled = asyncio.Event()  # set by each report settled here (wakes _await_settled)
        self.counts = {"approved": 0, "rejected": 0, "ignored": 0, "replayed": 0, "reports": 0}
        try:
            await ensure_migrated(self.engine)
        except DatabaseNotMigrated as exc:
            print(f"tradebus risk-manager: {exc}", file=sys.stderr)
            self.fail(f"database not migrated: {exc}")
            return
        self.sessions = session_factory(self.engine)
        self.reads = read_sessions(self.sessions)  # one-statement reads, outside a transaction
        self.ledger = Ledger(self.sessions)
        # One instance sweeps and publishes the account's metrics (decision 0031).
        self.lease = DutyLease(self.engine, "risk-manager")
        self.sweeper = ExpirySweeper(self.ledger, self._publish, source=self.name,
                                     reconcile_interval=s.risk_reconcile_interval)
        if s.trading_mode is TradingMode.PAPER:
            seeded = await self.ledger.ensure_initial_balances(s.initial_balances)
            self.log.info("paper account", seeded=seeded, balances={k: str(v) for k, v in s.initial_balances.items()})
        # Sandbox/live: client order ids carry this database's salt (no adoption across deployments).
        self.deployment = None if s.trading_mode is TradingMode.PAPER else await deployment_salt(self.sessions)
        self.markets = MarketBook(from_exchange=s.markets_from_exchange, api_base=s.exchange_api_url)
        self.limits, self.sizing = s.limits(), s.sizing()
        state = await self.ledger.risk_state()
        if state.trading_state is not TradingState.ACTIVE and state.changed_by == "ledger":
            self._duty_problems[_UNBOOKED] = f"BUYs halted ({state.trading_state.value}): {state.trading_state_reason}"
        self.log.info("risk state", trading_state=state.trading_state.value, emergency_stop=state.emergency_stop,
                      clock="signal" if s.signal_clock else "wall")
        prefix = self.bus.topology.exchange
        await self.bus.consume(f"{prefix}.risk_manager.control", self.on_control,
                               accepts=(EmergencyStop, PauseStrategy, ClosePosition))
        await self.bus.consume_group(f"{prefix}.risk_manager.execution_reports", self.on_report,
                                     accepts=(ExecutionReport,))
        await self._settle_reports_first(f"{prefix}.risk_manager.execution_reports")
        # Protective exits (decision 0023): every candle checks the open positions of its symbol.
        self.exits = ExitEnforcer(self.reads, self.store, self.ledger, self.decide, source=self.name)
        await self.bus.consume_group(f"{prefix}.risk_manager.candles", self.on_candle, accepts=(Candle,))
        await self.bus.consume_group(f"{prefix}.risk_manager.signals", self.on_signal, accepts=(Signal, SignalsDone))
        self._tasks = [
            asyncio.create_task(self._every(s.risk_sweep_interval, self.sweep_expired), name="risk-sweeper"),
            asyncio.create_task(self._every(s.risk_metrics_interval, self.publish_metrics), name="risk-metrics"),
        ]

    async def _await_settled(self, signal: Signal) -> None:
        await self._await_market_settled(signal.exchange, signal.symbol,
                                         client_order_id_for(signal.message_id, self.deployment))

    async def _await_market_settled(self, exchange: str, symbol: str, own: str | None = None) -> None:
        """Decide only on a settled symbol: wait (bounded) until no other order of the
        signal's exchange and symbol is open (decision 0026; 0007 waited for the whole account).

        The risk manager only places market orders, so an open reservation normally settles
        within milliseconds. Deciding before it has would make the outcome depend on timing:
        a SELL one candle after its BUY would see no position if the BUY's fill report had
        not been applied yet. Past RISK_SETTLE_WAIT (execution down, a resting order) the
        signal is decided on the ledger as it stands, and the wait is logged. Another
        symbol's open order changes only balances and exposure here: balances stay exact
        through the ledger's atomic reservations, so symbols are decided concurrently.
        Woken by each report this process settles; polled for those another instance settles.

        A reservation without any report that is older than RISK_SETTLE_WAIT is not waited
        for: its order has had the whole wait to reach execution, so it is most likely lost
        (dead-lettered, purged) and waits for the sweeper instead; otherwise every later
        decision would wait the full time because of it until it expires.
        """
        loop = asyncio.get_running_loop()
        wait = self.settings.risk_settle_wait
        deadline = loop.time() + wait
        try:
            while True:
                stranded_before = datetime.now(UTC) - timedelta(seconds=wait)
                self._report_settled.clear()  # before the read: a report settled during it wakes us
                pending = [
                    r.client_order_id for r in await self.ledger.open_reservations(exchange, symbol)
                    if r.client_order_id != own and (r.last_report_status is not None or r.created_at > stranded_before)
                ]
                if not pending:
                    return
                self.settling_on = tuple(pending)
                if loop.time() > deadline:
                    self.log.warning("deciding with orders still open", open_orders=len(pending), first=pending[0])
                    return
                # Waiting lets the reports run, even beside a signal handled alone after a
                # crash (infra.bus.isolation), which would otherwise hold them back.
                async with waiting_on_other_messages():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._report_settled.wait(), 0.02)
                if self.stopping:
                    return
        finally:
            self.settling_on = ()

    async def _settle_reports_first(self, queue: str, limit: float = 30.0) -> None:
        """Apply the execution reports that queued up while we were down before deciding anything.

        A signal decided before its strategy's fills are settled would see a stale position
        (a SELL of a BUY that has in fact filled); after a restart the ledger is brought up to
        date first, so the decisions equal those of a run that never stopped.
        """
        deadline = asyncio.get_running_loop().time() + limit
        while await self.bus.group_depth(queue) > 0:
            if asyncio.get_running_loop().time() > deadline or await self.sleep_unless_stopped(0.05):
                self.log.warning("reports still queued, deciding anyway", queue=queue)
                return
        partitions = {spec.name for spec in self.bus.topology.group(queue)}
        for consumer in self.bus.consumers:
            if consumer.queue in partitions:
                await consumer.wait_idle()

    async def teardown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if hasattr(self, "lease"):
            await self.lease.close()
        await self.store.close()
        await self.engine.dispose()

    def health_problems(self) -> list[str]:
        return list(self._duty_problems.values())

    def heartbeat_detail(self) -> dict[str, str]:
        detail = {key: str(value) for key, value in self.counts.items()}
        detail["awaiting_reconcile"] = str(len(self.sweeper.asked)) if hasattr(self, "sweeper") else "0"
        detail["runs_duties"] = str(hasattr(self, "lease") and self.lease.holding).lower()
        detail["awaiting_settlement"] = str(len(self.settling_on))
        detail["exits_decided"] = str(self.exits.exits_decided if hasattr(self, "exits") else 0)
        detail["exit_waits_run_out"] = str(self.exits.stalls if hasattr(self, "exits") else 0)
        return detail

    # --- signals ---------------------------------------------------------------------------
    async def on_signal(self, message: Message, delivery: Delivery) -> None:
        """Decide on one signal; the decision and its reservation commit before anything is published.
        A SignalsDone marker (decision 0028) follows a candle's signals on this queue: it records
        that they are all decided, which the candle queue's exits of the next candle wait for."""
        if isinstance(message, SignalsDone):
            await self.ledger.record_signals_done(message.exchange, message.symbol, message.timeframe, message.candle_time)
            self.exits.progress_recorded()
            return
        assert isinstance(message, Signal)
        message = without_exit_fields(message)
        # Exits first: a held candle up to this signal's may stop a position out before the
        # strategy's signal at its close is decided (the backtester's order; decision 0023).
        # On a settled account: a BUY whose fill report is not applied yet has no position for
        # the walk to find, and its exit would come after this signal (parity, decision 0024).
        await self._await_settled(message)
        exits_before = self.exits.exits_decided
        await self.exits.through(message.exchange, message.symbol, message.timeframe, message.candle_time)
        # Still settled unless an exit was decided meanwhile (its SELL is an open order now).
        await self.decide(message, settled=self.exits.exits_decided == exits_before)

    async def on_candle(self, message: Message, delivery: Delivery) -> None:
        """Enforce the protective exits of the candle's symbol on this candle, after the
        strategies' signals of the candle before it (decision 0028)."""
        assert isinstance(message, Candle)
        await self.exits.after_signals(
            message, wait=self.settings.risk_exit_signal_wait, stopping=lambda: self.stopping,
            # As before a signal's walk: a SELL of the previous candle may still be filling.
            settled=lambda: self._await_market_settled(message.exchange, message.symbol),
        )

    async def decide(self, signal: Signal, note: str | None = None, *, settled: bool = False) -> None:
        """Decide ``signal`` (a strategy's, or an operator's close); ``note`` heads the audited
        detail, so the audit and the rejection say why an operator's SELL exists. ``settled``:
        the caller has just waited for the symbol's open orders (``_await_settled``)."""
        prior = await self.ledger.decision(signal.message_id)
        if prior is not None:
            # Already decided (a redelivery, possibly after a crash before the publish).
            self.counts["replayed"] += 1
            await self._publish(outgoing.replay(signal, prior, source=self.name))
            return
        if signal.side is not SignalSide.HOLD and not settled:
            await self._await_settled(signal)
        wall = datetime.now(UTC)
        if signal.side is SignalSide.HOLD:
            decision = evaluate(signal, self._bare_snapshot(wall), self.limits, self.sizing, None)
            assert isinstance(decision.outcome, Ignored)
            record = outgoing.audit_record(signal, DecisionKind.IGNORED, decision.outcome.detail,
                                           decision.inputs, decided_at=wall)
            await self.ledger.reject(CONSUMER_SIGNALS, signal.message_id, record)
            self.counts["ignored"] += 1
            observe.risk_decision(DecisionKind.IGNORED.value)
            return
        snapshot, reading, extra = await self._snapshot(signal, wall)
        if signal.exit_price is not None:
            # A protective exit is sized and priced at its trigger price (decision 0023).
            snapshot = dataclasses.replace(snapshot, reference_price=signal.exit_price)
        try:
            rules = await self.markets.rules(signal.exchange, signal.symbol)
        except UnknownMarket as exc:
            rules, extra["market_error"] = None, str(exc)
        decision = evaluate(signal, snapshot, self.limits, self.sizing, rules)
        inputs = {**decision.inputs, **extra}
        if isinstance(decision.outcome, Rejected):
            detail = f"{note}: {decision.outcome.detail}" if note else decision.outcome.detail
            await self._reject(signal, decision.outcome.reason, detail, inputs, snapshot.now)
            return
        assert isinstance(decision.outcome, Approved) and reading.candle_open is not None
        order = outgoing.order_request(
            signal, decision.outcome.order, source=self.name, reference_time=reading.candle_open,
            expires_at=wall + timedelta(seconds=self.settings.risk_order_ttl), deployment=self.deployment,
        )
        detail = f"approved {order.side.value} {order.quantity} {order.symbol} at {order.reference_price}"
        detail = f"{note}: {detail}" if note else detail
        record = outgoing.audit_record(signal, DecisionKind.APPROVED, detail, inputs, decided_at=snapshot.now, output=order)
        # A BUY's account-wide limits are decided again under the account lock (decision 0029).
        check = account_check(signal, snapshot, self.limits, decision.outcome.order, extra["marks"])
        result = await self.ledger.approve(CONSUMER_SIGNALS, signal.message_id, outgoing.reservation(order), record, check)
        if result.status is ApproveStatus.RESERVED:
            self.counts["approved"] += 1
            observe.risk_decision(DecisionKind.APPROVED.value)
            self.log.info("order approved", client_order_id=order.client_order_id, detail=detail)
            await self._publish(order)
        elif result.decision is not None:
            # DUPLICATE (decided by a concurrent delivery), or refused by the ledger (lost the race
            # for the balance, a position or a limit): publish exactly what the audit says was decided.
            self.counts["rejected" if result.decision.decision is DecisionKind.REJECTED else "replayed"] += 1
            if result.status is not ApproveStatus.DUPLICATE:  # recorded just now, as a rejection
                reason = result.decision.reason
                observe.risk_decision(result.decision.decision.value, reason.value if reason else None)
            await self._publish(outgoing.replay(signal, result.decision, source=self.name))

    async def _reject(self, signal: Signal, reason: RejectionReason, detail: str, inputs: dict[str, Any], decided_at: datetime) -> None:
        message = outgoing.rejection(signal, reason, detail, source=self.name)
        record = outgoing.audit_record(signal, DecisionKind.REJECTED, detail, inputs, decided_at=decided_at,
                                       reason=reason, output=message)
        await self.ledger.reject(CONSUMER_SIGNALS, signal.message_id, record)
        self.counts["rejected"] += 1
        observe.risk_decision(DecisionKind.REJECTED.value, reason.value)
        self.log.info("signal rejected", signal_id=str(signal.message_id), reason=reason.value, detail=detail)
        await self._publish(message)

    def _bare_snapshot(self, wall: datetime) -> RiskSnapshot:
        return RiskSnapshot(now=wall, trading_state=TradingState.ACTIVE, emergency_stop=False, reference_price=None,
                            price_time=None, available_quote=Decimal(0), equity=Decimal(0))

    async def _snapshot(self, signal: Signal, wall: datetime) -> tuple[RiskSnapshot, PriceReading, dict[str, Any]]:
        """Read everything the rules need, plus extra audit inputs (wall time, balances, marks)."""
        s = self.settings
        # Independent reads (InfluxDB, Postgres) in flight together: one wait instead of two.
        # The audit reads need only the risk clock's "now", known without any read.
        now = risk_now(signal, signal_clock=s.signal_clock, wall_now=wall)
        reading, account, order_times, approved_same_candle, drift, pause = await asyncio.gather(
            reference_price(self.store, signal, signal_clock=s.signal_clock, max_age=self.limits.max_price_age,
                            wall_now=wall),
            self.ledger.account_view(),
            self.ledger.recent_order_times(now - _DAY, strategy_id=signal.strategy_id),
            approved_for_candle(self.reads, signal), drift_state(self.reads),
            self.ledger.strategy_pause(signal.strategy_id),
        )
        state, balances = account.risk_state, account.balances
        positions, reservations = account.positions, account.open_reservations
        base, quote, _ = split_symbol(signal.symbol)
        extra: dict[str, Any] = {"wall_time": wall, "clock": "signal" if s.signal_clock else "wall",
                                 "price_error": reading.error,
                                 "balances": {a: {"available": b.available, "reserved": b.reserved} for a, b in balances.items()}}
        # Signal clock: marks as of the signal's candle close, never candles stored ahead of it.
        at = reading.now if s.signal_clock else None
        marked = await marks(self.store, signal.exchange, quote, _held_assets(balances, positions, quote) - {base},
                             signal.timeframe, at)
        if reading.price is not None:
            marked[base] = reading.price
        extra["marks"] = marked
        value = value_account(balances, positions, reservations, marked, strategy_id=signal.strategy_id,
                              exchange=signal.exchange, symbol=signal.symbol)
        peak = state.peak_equity
        if at is not None and value.error is None and value.equity > 0:
            # The replay's peak follows the signals' market time (metrics use the latest marks).
            peak = await self.ledger.record_peak_equity(value.equity, known_peak=state.peak_equity)
        atr = signal.indicators.get("atr")
        if atr is None and self.sizing.mode is SizingMode.ATR:
            atr = await atr_at(self.store, signal)
        return risk_snapshot(
            value, balances, symbol=signal.symbol, now=reading.now, reference_price=reading.price,
            price_time=reading.price_time, peak_equity=peak, order_times=order_times,
            trading_state=state.trading_state, emergency_stop=state.emergency_stop,
            emergency_reason=state.emergency_reason, approved_same_candle=approved_same_candle,
            atr=atr, ledger_drift=drift.detail if drift.blocking else None,
            strategy_paused=_paused(pause),
        ), reading, extra

    # --- execution reports and control -----------------------------------------------------
    async def on_report(self, message: Message, delivery: Delivery) -> None:
        """Settle a report (idempotent in the ledger), then publish the position it changed."""
        assert isinstance(message, ExecutionReport)
        outcome = await self.ledger.apply_report(CONSUMER_REPORTS, message)
        self._report_settled.set()
        self.counts["reports"] += 1
        if outcome.applied and outcome.problem is not None:
            # Booked as far as it could be (never a dead-letter loop); new BUYs are halted
            # (REDUCING, persisted) until an operator has reconciled the ledger.
            self.log.error("execution report not fully booked; new BUYs halted", client_order_id=message.client_order_id,
                           report_id=str(message.message_id), problem=outcome.problem)
            self._duty_problems[_UNBOOKED] = f"BUYs halted (REDUCING): {message.client_order_id}: {outcome.problem}"
        self.sweeper.asked.pop(message.client_order_id, None)
        if outcome.position is not None and (outcome.position_changed or not outcome.applied):
            # A redelivered report re-publishes the same (deterministic) update: the first
            # publish may have been lost in a crash after the commit.
            await self._publish(position_update(outcome.position, source=self.name, parent=message))

    async def on_control(self, message: Message, delivery: Delivery) -> None:
        """Apply an operator control, persisted with its row in ``controls`` (once per message):
        the emergency stop, a strategy's pause or resume, or a close (decided as a SELL signal)."""
        if isinstance(message, ClosePosition):
            await self._close(message)
            return
        if isinstance(message, PauseStrategy):
            first = await self.ledger.apply_pause(message, self.name)
            self.log.warning("strategy pause", strategy_id=message.strategy_id, paused=message.paused,
                             reason=message.reason, by=message.requested_by, recorded=first)
            return
        assert isinstance(message, EmergencyStop)
        changed = await self.ledger.apply_emergency_stop(CONSUMER_CONTROL, message, self.name)
        self.log.warning("emergency stop", active=message.active, reason=message.reason,
                         by=message.requested_by, applied=changed)

    async def _close(self, command: ClosePosition) -> None:
        """Decide the close as the strategy's SELL at the latest stored candle, then record it."""
        s = self.settings
        exchange = command.exchange or s.exchange
        try:
            candle = await self.store.latest_candle(exchange, command.symbol, s.timeframe)
        except PriceStoreError as exc:
            if is_transient(exc):
                raise  # InfluxDB away: retried, never refused for a price the store would have had
            candle = None
        if candle is None:
            outcome, detail = close_without_price(command, exchange, s.timeframe)
            await self.ledger.record_control(command, self.name, outcome, detail)
            return
        signal = close_signal(command, candle)
        await self.decide(signal, note=signal.reason)
        decision = await self.ledger.decision(signal.message_id)
        assert decision is not None, "decide() commits a decision for every non-HOLD signal"
        outcome, detail, client_order_id = close_outcome(decision)
        first = await self.ledger.record_control(command, self.name, outcome, detail, client_order_id)
        self.log.warning("position close", strategy_id=command.strategy_id, symbol=command.symbol,
                         outcome=outcome.value, detail=detail, by=command.requested_by, recorded=first)

    # --- background duties -----------------------------------------------------------------
    async def _every(self, seconds: float, duty: Any) -> None:
        """Run ``duty`` every ``seconds`` in the instance holding the duty lease (decision 0031);
        the others only follow the halt state their health reports."""
        while not await self.sleep_unless_stopped(seconds):
            try:
                await (duty() if await self.lease.held() else self._follow_halt())
                self._duty_problems.pop(duty.__name__, None)
            except Exception as exc:  # a failing duty degrades health; it must not kill the agent
                self._duty_problems[duty.__name__] = f"{duty.__name__} failing: {exc!r}"
                self.log.warning("duty failed", duty=duty.__name__, error=repr(exc))

    async def sweep_expired(self) -> None:
        """Release expired reservations whose order is known terminal; ask execution about the rest."""
        waiting = await self.sweeper.sweep()
        if waiting:
            self._duty_problems["expired"] = f"{waiting} expired reservation(s) await reconciliation by execution"
        else:
            self._duty_problems.pop("expired", None)

    async def publish_metrics(self) -> None:
        s = self.settings
        quote = s.quote_asset
        balances = await self.ledger.balances()
        positions = await self.ledger.positions()
        marked = await marks(self.store, s.exchange, quote, _held_assets(balances, positions, quote), s.timeframe)
        figures = account_figures(balances, positions, marked, quote)
        state = await self._follow_halt()
        # Under the signal clock the latest candles are ahead of the decisions: the peak is
        # recorded by the decisions (at signal time), never from these marks.
        live_peak = figures.equity > 0 and not s.signal_clock
        peak = await self.ledger.record_peak_equity(figures.equity) if live_peak else state.peak_equity
        message = risk_metrics(
            source=self.name, quote_asset=quote, figures=figures, balances=balances, peak_equity=peak,
            trading_state=state.trading_state, emergency_stop=state.emergency_stop, limits=self.limits,
        )
        observe.risk_account(
            quote=quote, equity=message.equity, drawdown=message.drawdown, trading_state=state.trading_state.value,
            trading_states=(t.value for t in TradingState), emergency_stop=state.emergency_stop,
            positions=((p.strategy_id, p.symbol, p.quantity) for p in positions),
            reservations_held=len(await self.ledger.open_reservations()),
        )
        await self._publish(message)

    async def _follow_halt(self) -> RiskStateView:
        state = await self.ledger.risk_state()
        if state.trading_state is TradingState.ACTIVE:
            self._duty_problems.pop(_UNBOOKED, None)  # an operator reconciled and released the halt
        return state

    async def _publish(self, message: Message | None) -> None:
        if message is None:
            return
        try:
            await self.bus.publish(message)
        except PublishFailed:
            # The decision is committed; raising makes the bus redeliver, and the redelivery
            # re-publishes the identical message from the audit.
            self.log.warning("publish failed; the message is redelivered and re-published",
                             kind=type(message).__name__)
            raise


def _held_assets(balances: dict[str, Any], positions: list[Any], quote: str) -> set[str]:
    """Assets that need a mark: non-zero balances and open positions' base assets."""
    held = {asset for asset, balance in balances.items() if balance.total != 0}
    held |= {split_symbol(p.symbol)[0] for p in positions if p.quantity != 0}
    return held - {quote}


def _paused(pause: PauseView | None) -> str | None:
    return f"by {pause.requested_by}: {pause.reason}" if pause is not None and pause.paused else None

