"""The execution agent: places approved orders on the paper exchange (default) or through ccxt,
stores every transition and reports it on execution.report.{symbol}.

Startup is the recovery path: before consuming anything it publishes what a crash left
unpublished and asks the exchange for the true state of every open or UNKNOWN order.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from agents.execution.guard import Refusal
from agents.execution.settings import ExecutionSettings, refusal_reason
from agents.execution.store import BadEvent, ClaimOutcome, OrderRecord, OrderStore
from agents.execution.unknown import Lookup, LookupOutcome, look_up
from agents.runtime import Agent
from infra.bus import Delivery
from infra.db import DatabaseNotMigrated, create_engine, ensure_migrated, session_factory
from infra.db.lease import DutyLease
from infra.exchanges.adapter import ExchangeAdapter, OrderOutcomeUnknown, OrderRejected, OrderState, RateLimited
from infra.exchanges.paper import PaperConfig, PaperExchange
from infra.influx import from_settings
from infra.metrics import catalogue as metrics
from infra.metrics import observe
from infra.settings import DataSource, Settings, TradingMode, redact_url
from protocol import CancelOrder, Candle, ControlOutcome, EmergencyStop, Message, OrderRequest, OrderStatus

__all__ = ["CRASH_EXIT", "ExecutionAgent", "StartRefused"]

# Exit code of the test-only crash hook (EXECUTION_TEST_CRASH_AFTER_PLACE).
CRASH_EXIT = 97
# Exit code when the configuration or the database forbids starting.
EXIT_REFUSED = 2


class StartRefused(RuntimeError):
    """The agent must not start (unsafe live configuration, unmigrated database, no adapter).

    ``exit_code`` 2 means "fix the configuration"; 1 means "a dependency is down, retry"."""

    def __init__(self, reason: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


def _now() -> datetime:
    return datetime.now(UTC)


class ExecutionAgent(Agent):
    """Consumes orders, cancels and emergency stops (and candles, to fill paper limit orders)."""

    name = "execution"
    settings_class: ClassVar[type[Settings]] = ExecutionSettings
    settings: ExecutionSettings

    async def run(self, install_signal_handlers: bool = True) -> None:
        """Refuse before touching the bus when the configuration or database is not safe to run."""
        try:
            await self._preflight()
        except StartRefused as exc:
            self.log.error("refusing to start", reason=str(exc))
            self.exit_code = exc.exit_code
            return
        await super().run(install_signal_handlers)

    async def _preflight(self) -> None:
        reason = refusal_reason(self.settings)
        if reason:
            raise StartRefused(reason)
        try:
            await ensure_migrated(self.settings.database_url.get_secret_value())
        except DatabaseNotMigrated as exc:
            raise StartRefused(str(exc)) from None
        except Exception as exc:  # unreachable or missing database: a supervisor retries later
            url = redact_url(self.settings.database_url.get_secret_value())
            raise StartRefused(f"database {url} unavailable: {type(exc).__name__}: {exc}", exit_code=1) from None
        if self.settings.trading_mode is not TradingMode.PAPER:
            from agents.execution.live import credentials_problem  # ccxt only when trading for real

            problem = await credentials_problem(self.settings)
            if problem is not None:
                raise StartRefused(problem.reason, problem.exit_code)

    # ------------------------------------------------------------------ lifecycle

    async def setup(self) -> None:
        s = self.settings
        self.engine = create_engine(s.database_url.get_secret_value())
        self.sessions = session_factory(self.engine)
        self.store = OrderStore(self.sessions, self.name, exchange_in_database=s.trading_mode is TradingMode.PAPER)
        self.prices = from_settings(s)
        self.adapter = await self._build_adapter()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.reconciled = 0
        self.refused = 0
        self._refusal_problem: str | None = None
        self._bad_events: dict[int, str] = {}
        self.log.info("execution starting", adapter=self.adapter.name, trading_mode=s.trading_mode.value)
        await self.reconcile(initial=True)
        self._tasks: list[asyncio.Task[None]] = []
        # One instance reconciles and checks the balances each round (decision 0031): against a
        # real exchange every extra instance would multiply the private calls.
        self.lease = DutyLease(self.engine, "execution")
        if s.trading_mode is not TradingMode.PAPER:
            from agents.execution.live import BalanceDuty

            self.balance_duty = BalanceDuty(self.sessions, self.adapter, s)
            await self.balance_duty.seed()
            await self.balance_duty.compare()
            duty = self.balance_duty.run(s.execution_drift_interval, self.sleep_unless_stopped, self.lease.held)
            self._tasks.append(asyncio.create_task(duty, name="balance-drift"))
        prefix = self.bus.topology.exchange
        await self.bus.consume_group(f"{prefix}.execution.orders", self.on_order, (OrderRequest,))
        await self.bus.consume(f"{prefix}.execution.control", self.on_control, (CancelOrder, EmergencyStop))
        await self.bus.consume_group(f"{prefix}.execution.candles", self.on_candle, (Candle,))
        self._reconcile_task = asyncio.create_task(self._reconcile_loop(), name="reconcile")

    async def teardown(self) -> None:
        for task in (self._reconcile_task, *self._tasks):
            task.cancel()
        await asyncio.gather(self._reconcile_task, *self._tasks, return_exceptions=True)
        if hasattr(self, "lease"):
            await self.lease.close()
        await self.adapter.close()
        await self.prices.close()
        await self.engine.dispose()

    def heartbeat_detail(self) -> dict[str, str]:
        if not hasattr(self, "adapter"):
            return {}
        drift = self.balance_duty.detail() if hasattr(self, "balance_duty") else {}
        return {
            "adapter": self.adapter.name, "reconciled": str(self.reconciled), "refused_orders": str(self.refused),
            "runs_duties": str(hasattr(self, "lease") and self.lease.holding).lower(), **drift,
        }

    async def _build_adapter(self) -> ExchangeAdapter:
        s = self.settings
        if s.trading_mode is TradingMode.PAPER:
            paper = PaperExchange(
                self.sessions,
                self.prices,
                PaperConfig(
                    timeframe=s.timeframe, slippage_bps=s.paper_slippage_bps, fees=s.paper_fees,
                    latest_price=s.data_source is DataSource.EXCHANGE,
                ),
            )
            await paper.seed_balances(s.paper_seed)
            return paper
        from agents.execution.live import build_ccxt

        return build_ccxt(s)

    # ------------------------------------------------------------------ handlers

    async def on_order(self, message: Message, delivery: Delivery) -> None:
        """Place an approved order once: the client_order_id is claimed with the message id; a
        redelivered (or repeated) order is resolved against the exchange, never placed again."""
        assert isinstance(message, OrderRequest)
        async with self._locks[message.client_order_id]:
            claim = await self.store.claim(message, "execution.orders", _now())
            if claim.outcome is not ClaimOutcome.EXISTING:  # a new row of the orders table
                metrics.ORDERS.labels(symbol=message.symbol).inc()
            self.log.info("order received", client_order_id=message.client_order_id, outcome=claim.outcome.value)
            if claim.outcome is ClaimOutcome.REFUSED:
                self._alert_refused(message, claim.refusal)
            elif claim.outcome is ClaimOutcome.SUBMIT:
                await self._submit(claim.order, counted=True)
            elif claim.outcome is ClaimOutcome.EXISTING:
                await self._resolve(claim.order)
            await self._flush(message.client_order_id)

    def _alert_refused(self, request: OrderRequest, refusal: Refusal | None) -> None:
        """A request without its reservation was not decided by the risk manager: say so loudly
        (error log, DEGRADED heartbeat with the reason, a count in the heartbeat detail)."""
        assert refusal is not None
        self.refused += 1
        metrics.ORDERS_REFUSED.labels(reason=refusal.code.value).inc()
        self.log.error(
            "order refused: not backed by a reservation", client_order_id=request.client_order_id,
            code=refusal.code.value, detail=refusal.detail, strategy_id=request.strategy_id,
            source=request.source, message_id=str(request.message_id),
        )
        self._refusal_problem = (
            f"refused {self.refused} order(s) without a matching reservation; last {request.client_order_id} "
            f"from strategy {request.strategy_id!r}: {refusal.reason}"
        )

    async def on_control(self, message: Message, delivery: Delivery) -> None:
        """CancelOrder cancels one open order; EmergencyStop(active) halts placing and cancels all.
        Each is recorded once in the ledger's ``controls`` (APPLIED, or REFUSED with the reason)."""
        await self.store.claim_control(message, "execution.control")  # type: ignore[arg-type]
        if isinstance(message, CancelOrder):
            # Applied again on a redelivery (a cancel is idempotent); recorded the first time only.
            outcome, detail = await self._cancel(message.client_order_id, f"cancel requested: {message.reason}")
            await self.store.record_control(message, outcome, detail, message.client_order_id)
            return
        assert isinstance(message, EmergencyStop)
        applied = await self.store.apply_halt(message)
        self.log.warning("emergency stop", active=message.active, applied=applied, reason=message.reason)
        active, _ = await self.store.halt_state()
        cancelled = 0
        if active:
            for record in await self.store.unresolved():
                outcome, _ = await self._cancel(record.client_order_id, f"emergency stop: {message.reason}")
                cancelled += outcome is ControlOutcome.APPLIED
            for state in await self.adapter.open_orders():
                # Open at the exchange but unknown here: cancel it anyway, the stop means all.
                if await self.store.get(state.client_order_id) is None:
                    self.log.error("cancelling an order unknown to execution", client_order_id=state.client_order_id)
                    await self.adapter.cancel(state.client_order_id, state.symbol)
        if not applied:
            outcome, detail = ControlOutcome.REFUSED, "a newer emergency-stop command was applied already"
        else:
            outcome = ControlOutcome.APPLIED
            detail = f"placing halted; {cancelled} open order(s) cancelled" if message.active else "placing resumed"
        await self.store.record_control(message, outcome, detail)

    async def on_candle(self, message: Message, delivery: Delivery) -> None:
        """Paper mode: fill the resting limit orders this candle crosses (no-op for ccxt)."""
        assert isinstance(message, Candle)
        if not isinstance(self.adapter, PaperExchange):
            return
        states = await self.adapter.on_candle(message)
        for state in states:
            await self._record(state)
        if states:
            # Only this candle's fills: an event left unpublished by another handler is
            # published by that handler's redelivery or by reconciliation, not on every candle
            # (a read of the whole outbox per candle, decision 0030).
            await self._flush()

    # ------------------------------------------------------------------ order work

    async def _submit(self, record: OrderRecord, counted: bool = False) -> None:
        """Send the order; map the answer (or the failure) to a stored transition.

        ``counted``: the claim that admitted the order counted its first send already."""
        request = record.request
        s = self.settings
        for attempt in range(s.execution_rate_limit_retries + 1):
            if attempt > 0 or not counted:
                await self.store.count_submit(request.client_order_id)
            try:
                state = await self.adapter.place(request)
            except OrderRejected as exc:
                await self.store.record_status(request, OrderStatus.REJECTED, str(exc) or "rejected", _now())
                return
            except OrderOutcomeUnknown as exc:
                self.log.warning("order outcome unknown, querying", client_order_id=request.client_order_id, error=str(exc))
                await self.store.record_status(request, OrderStatus.UNKNOWN, f"outcome unknown: {exc}", _now())
                await self._flush(request.client_order_id)
                await self._resolve_by_id(request.client_order_id)
                return
            except RateLimited as exc:
                await self.store.count_submit(request.client_order_id, -1)  # refused unprocessed
                delay = s.execution_rate_limit_backoff * 2**attempt
                self.log.warning("rate limited, backing off", seconds=delay, attempt=attempt + 1, error=str(exc))
                if await self.sleep_unless_stopped(delay):
                    break
                continue
            if s.execution_test_crash_after_place:
                # TEST ONLY: die as if killed right after the exchange accepted the order.
                os._exit(CRASH_EXIT)
            await self._record(state)
            return
        # Still rate limited (or stopping): the message is retried by the bus and resolved then.
        raise RateLimited(f"order {request.client_order_id} not placed: still rate limited")

    async def _resolve_by_id(self, client_order_id: str) -> None:
        record = await self.store.get(client_order_id)
        if record is not None:
            await self._resolve(record)

    async def _resolve(self, record: OrderRecord) -> None:
        """Ask the exchange for the order's true state; an order the exchange never saw is sent
        again only after that query (and only while it is valid and not halted)."""
        if record.status.is_terminal:
            return
        try:
            found = await self._look_up(record)
        except (OrderOutcomeUnknown, RateLimited) as exc:
            self.log.warning("order query failed; retried by reconciliation", client_order_id=record.client_order_id, error=str(exc))
            return
        if found.state is not None:
            await self._record(found.state)
            return
        if found.outcome is LookupOutcome.UNDECIDED:
            self.log.warning("unknown order not found yet; never resent inside its window", client_order_id=record.client_order_id)
            return
        if record.status is not OrderStatus.UNKNOWN:
            self.log.error("open order not found at the exchange", client_order_id=record.client_order_id)
            return
        request, now = record.request, _now()
        halted, halt_reason = await self.store.halt_state()
        if request.expires_at <= now:
            await self.store.record_status(request, OrderStatus.EXPIRED, "never reached the exchange and expired", now)
        elif halted:
            await self.store.record_status(request, OrderStatus.REJECTED, f"emergency stop engaged: {halt_reason}", now)
        elif record.submit_attempts >= self.settings.execution_max_submits:
            reason = f"not found at the exchange after {record.submit_attempts} submissions"
            await self.store.record_status(request, OrderStatus.REJECTED, reason, now)
        else:
            self.log.info("order never reached the exchange, submitting", client_order_id=record.client_order_id)
            await self._submit(record)

    async def _look_up(self, record: OrderRecord) -> Lookup:
        return await look_up(self.adapter, record.client_order_id, record.symbol, status=record.status,
                             submit_attempts=record.submit_attempts, last_send=record.updated_at,
                             sleep=self.sleep_unless_stopped)

    async def _cancel(self, client_order_id: str, reason: str) -> tuple[ControlOutcome, str]:
        """Cancel the order if it is open; (APPLIED, ...) when it ended CANCELED, else REFUSED
        with the reason (unknown, already final, filled meanwhile, not confirmed)."""
        async with self._locks[client_order_id]:
            record = await self.store.get(client_order_id)
            if record is None:
                self.log.warning("cancel for an unknown order", client_order_id=client_order_id)
                return ControlOutcome.REFUSED, f"no order {client_order_id} is known to execution"
            if record.status.is_terminal:
                # Whoever asks (an operator, the risk manager about an expired reservation) gets
                # the final state again: the latest report, under its own id.
                self.log.info("cancel: order already final", client_order_id=client_order_id, status=record.status.value)
                await self._flush(client_order_id)
                latest = await self.store.latest_report(client_order_id)
                if latest is not None:
                    await self.bus.publish(latest)
                return ControlOutcome.REFUSED, f"order {client_order_id} is already final: {record.status.value}"
            problem: str | None = None
            try:
                state = await self.adapter.cancel(client_order_id, record.symbol)
            except OrderRejected as exc:
                # The exchange does not know it: CANCELED only with proof that it never got there
                # (an UNKNOWN send's window has passed); an order that shows up is recorded.
                found = await self._look_up(record)
                if found.outcome is LookupOutcome.NEVER_PLACED and record.status is OrderStatus.UNKNOWN:
                    await self.store.record_status(record.request, OrderStatus.CANCELED, reason, _now())
                elif found.state is not None:
                    await self._record(found.state)
                else:
                    self.log.error("cancel refused", client_order_id=client_order_id, error=str(exc))
                    problem = f"the exchange refused the cancel: {exc}"
            except (OrderOutcomeUnknown, RateLimited) as exc:
                self.log.warning("cancel not confirmed; asked again later", client_order_id=client_order_id, error=str(exc))
                problem = f"cancel not confirmed by the exchange ({exc}); send it again if the order stays open"
            else:
                if state.status is OrderStatus.CANCELED and state.reason is None:
                    state = replace(state, reason=reason)  # the report says who cancelled and why
                await self._record(state)
            await self._flush(client_order_id)
            after = await self.store.get(client_order_id)
            status = after.status if after is not None else record.status
            if status is OrderStatus.CANCELED:
                return ControlOutcome.APPLIED, f"order {client_order_id} cancelled"
            return ControlOutcome.REFUSED, problem or f"order {client_order_id} is {status.value}, not cancelled"

    async def _record(self, state: OrderState) -> None:
        try:
            transition = await self.store.record(state)
        except KeyError:
            self.log.error("exchange reports an order unknown to execution", client_order_id=state.client_order_id)
            return
        if transition is not None:
            self.log.info(
                "order transition", client_order_id=state.client_order_id, status=transition.status.value,
                filled=str(transition.cumulative_filled), last_fill=str(transition.last_fill_quantity),
            )

    async def _flush(self, client_order_id: str | None = None) -> None:
        """Publish the reports of stored transitions not yet published (the outbox), in order.

        An event that cannot become a valid report stays unpublished and is alerted (error log
        once, DEGRADED heartbeat); it never stops the events behind it."""
        for event_id, report in await self.store.unpublished(client_order_id):
            if isinstance(report, BadEvent):
                if event_id not in self._bad_events:
                    self.log.error("outbox event cannot be published", event_id=event_id, seq=report.seq, error=report.error)
                self._bad_events[event_id] = report.error
                continue
            await self.bus.publish(report)
            await self.store.mark_published([event_id])
            observe.order_report(report)
            self._bad_events.pop(event_id, None)

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self, initial: bool = False) -> None:
        """Bring every open or UNKNOWN order to its true state at the exchange and report it.

        On start (``initial``) an order whose state did not change is reported again with its
        latest report (same message id: harmless to whoever saw it already).
        """
        await self._flush()
        for record in await self.store.unresolved():
            async with self._locks[record.client_order_id]:
                before = await self.store.unpublished(record.client_order_id)
                await self._resolve(record)
                changed = len(await self.store.unpublished(record.client_order_id)) > len(before)
                await self._flush(record.client_order_id)
                if initial and not changed:
                    latest = await self.store.latest_report(record.client_order_id)
                    if latest is not None:
                        await self.bus.publish(latest)
            self.reconciled += 1
        if initial:
            self.log.info("reconciled", orders=self.reconciled)

    async def _reconcile_loop(self) -> None:
        while not await self.sleep_unless_stopped(self.settings.execution_reconcile_interval):
            try:
                if await self.lease.held():
                    await self.reconcile()
            except Exception as exc:  # keep trying; the next round (or a restart) catches up
                self.log.warning("reconciliation round failed", error=repr(exc))

    def health_problems(self) -> list[str]:
        problems: list[str] = []
        if getattr(self, "_refusal_problem", None):
            problems.append(self._refusal_problem)  # type: ignore[arg-type]
        bad: dict[int, str] = getattr(self, "_bad_events", {})
        if bad:
            first = min(bad)
            problems.append(f"{len(bad)} outbox event(s) cannot be published; event {first}: {bad[first]}")
        prices: Any = getattr(self, "prices", None)
        if prices is not None and not prices.healthy and self.settings.trading_mode is TradingMode.PAPER:
            problems.append(f"price store: {prices.last_error}")
        drift = self.balance_duty.problem() if hasattr(self, "balance_duty") else None
        return [*problems, drift] if drift else problems
