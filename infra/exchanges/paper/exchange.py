"""The paper exchange: a simulated exchange on Postgres, behind the same adapter interface as ccxt.

It keeps its own orders, fills and balances (``paper_*`` tables), so after a restart the
execution agent reconciles against it exactly as it would query a real exchange. Prices are the
stored candles, on the market clock: a market order fills at the close of the candle at its
``reference_time`` (the candle the decision saw; with ``latest_price``, for live exchange data,
the newest stored candle) in InfluxDB — no candle, no fill: the order is
rejected with the reason, never priced from a made-up or a future price. Resting limit orders
fill when ``on_candle`` is given a later candle whose range crosses them. The arithmetic is in
``fills.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from infra.db.durability import defer_flush
from infra.db.engine import read_sessions
from infra.db.models import PaperBalance, PaperFill, PaperOrder
from infra.exchanges.adapter import Fill, OrderRejected, OrderState
from infra.exchanges.markets import MarketRules, load_market_snapshot, market_rules
from infra.exchanges.paper import fills as rules
from infra.faults import is_transient
from infra.influx import PriceStoreError
from infra.logging import get_logger
from protocol import (
    Candle,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    split_symbol,
    timeframe_seconds,
)

__all__ = ["PaperConfig", "PaperExchange", "PriceSource", "snapshot_rules"]

_log = get_logger(component="paper_exchange")
_ZERO = Decimal(0)
_ONE_MS = timedelta(milliseconds=1)
_OPEN = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)


class _Undo(Exception):
    """Rolls back a placement that turned out to be a rejection."""


class PriceSource(Protocol):
    """Where prices come from (InfluxPriceStore satisfies it)."""

    async def candles_between(
        self, exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> list[Candle]: ...

    async def latest_candle(self, exchange: str, symbol: str, timeframe: str) -> Candle | None: ...


@lru_cache(maxsize=64)
def snapshot_rules(exchange: str, symbol: str) -> MarketRules:
    """Market rules from the saved snapshot of ``exchange`` (KeyError for an unknown market)."""
    return market_rules(load_market_snapshot(exchange), symbol)


@dataclass(frozen=True)
class PaperConfig:
    """Simulation parameters: slippage, fees, and which candle series is the price."""

    timeframe: str = "15m"
    slippage_bps: Decimal = Decimal(5)
    fees: rules.FeeRates = field(default_factory=rules.FeeRates)
    # False (replay): price as of the order's reference_time, the replay's market clock.
    # True (live exchange data): the newest stored candle, as a real exchange would fill now.
    latest_price: bool = False


class PaperExchange:
    """Simulated exchange implementing ``ExchangeAdapter`` (every method idempotent per client_order_id)."""

    name = "paper"
    # Placing is one local transaction: an order "not found" after a failed send was never placed.
    unknown_window = 0.0

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        prices: PriceSource,
        config: PaperConfig | None = None,
        *,
        rules_for: Callable[[str, str], MarketRules] = snapshot_rules,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._reads = read_sessions(sessions)  # one-statement reads, outside a transaction
        self._prices = prices
        self.config = config or PaperConfig()
        self._rules_for = rules_for
        self._clock = clock

    # ------------------------------------------------------------------ account

    async def seed_balances(self, seed: Mapping[str, Decimal]) -> None:
        """Give each asset its starting free balance, once: an asset already known keeps its balance."""
        if not seed:
            return
        async with self._sessions.begin() as session:
            rows = [{"asset": asset, "free": amount, "locked": _ZERO} for asset, amount in seed.items()]
            await session.execute(insert(PaperBalance).values(rows).on_conflict_do_nothing(index_elements=["asset"]))

    async def balances(self) -> dict[str, Decimal]:
        """Total (free + locked) per asset."""
        async with self._sessions() as session:
            rows = (await session.execute(select(PaperBalance))).scalars().all()
        return {row.asset: row.free + row.locked for row in rows}

    async def free_balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """(free, locked) per asset."""
        async with self._sessions() as session:
            rows = (await session.execute(select(PaperBalance))).scalars().all()
        return {row.asset: (row.free, row.locked) for row in rows}

    # ------------------------------------------------------------------ orders

    async def place(self, order: OrderRequest) -> OrderState:
        """Fill a market order now, or rest a limit order; raise OrderRejected with the reason.

        Placing a client_order_id that exists returns that order's state (a rejected one raises
        again), so a retried placement never creates a second order.
        """
        existing = await self.fetch(order.client_order_id, order.symbol)
        if existing is not None:
            if existing.status is OrderStatus.REJECTED:
                raise OrderRejected(existing.reason or "rejected")
            return existing
        candle, problem = await self._latest(order)
        placed: OrderState | None = None
        try:
            if problem is None:
                try:
                    async with self._sessions.begin() as session:
                        problem = await self._execute(session, order, candle)
                        if problem is not None:
                            raise _Undo  # whatever was half-done (a lock) goes with the transaction
                        # The caller records the answer with a synchronous commit of its own
                        # before reporting it (execution's order store), which flushes this too.
                        await defer_flush(session)
                        placed = await self._fetch_in(session, order.client_order_id)
                except _Undo:
                    pass
            if problem is not None:
                async with self._sessions.begin() as session:
                    await defer_flush(session)  # as above: the REJECTED transition is recorded next
                    session.add(self._new_row(order, OrderStatus.REJECTED, problem))
        except IntegrityError:
            # A concurrent placement of the same client_order_id won: report that order.
            state = await self.fetch(order.client_order_id, order.symbol)
            if state is None:
                raise
            return state
        if problem is not None:
            _log.info("paper_order_rejected", client_order_id=order.client_order_id, reason=problem)
            raise OrderRejected(problem)
        assert placed is not None
        return placed

    async def fetch(self, client_order_id: str, symbol: str) -> OrderState | None:
        async with self._sessions() as session:
            return await self._fetch_in(session, client_order_id)

    async def _fetch_in(self, session: AsyncSession, client_order_id: str) -> OrderState | None:
        row = await session.scalar(select(PaperOrder).where(PaperOrder.client_order_id == client_order_id))
        return None if row is None else await self._state(session, row)

    async def cancel(self, client_order_id: str, symbol: str) -> OrderState:
        """Cancel a resting order and release what it locked; a finished order stays as it is."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(PaperOrder).where(PaperOrder.client_order_id == client_order_id).with_for_update()
            )
            if row is None:
                raise OrderRejected(f"unknown order {client_order_id}")
            if row.status in _OPEN:
                if row.locked_asset is not None and row.locked_amount > _ZERO:
                    await self._move(session, {row.locked_asset: (row.locked_amount, -row.locked_amount)})
                row.status = OrderStatus.CANCELED.value
                row.locked_amount = _ZERO
                row.updated_at = self._clock()
            return await self._state(session, row)

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        async with self._sessions() as session:
            query = select(PaperOrder).where(PaperOrder.status.in_(_OPEN)).order_by(PaperOrder.id)
            if symbol is not None:
                query = query.where(PaperOrder.symbol == symbol)
            rows = (await session.execute(query)).scalars().all()
            return [await self._state(session, row) for row in rows]

    async def on_candle(self, candle: Candle) -> list[OrderState]:
        """Fill the resting limit orders this candle crosses (only orders placed before it)."""
        if candle.timeframe != self.config.timeframe:
            return []
        resting = (
            select(PaperOrder)
            .where(
                PaperOrder.status.in_(_OPEN),
                PaperOrder.order_type == OrderType.LIMIT.value,
                PaperOrder.exchange == candle.exchange,
                PaperOrder.symbol == candle.symbol,
                (PaperOrder.rests_after.is_(None)) | (PaperOrder.rests_after < candle.open_time),
            )
            .order_by(PaperOrder.id)
        )
        # Most candles find no resting order (the risk manager places market orders): a plain
        # read says so without a transaction; the locked read below decides what fills. An
        # order committed after this read rests on to the next candle, as it would had it been
        # committed just after the locked read.
        async with self._reads() as session:
            if (await session.scalar(resting.with_only_columns(PaperOrder.id).limit(1))) is None:
                return []
        async with self._sessions.begin() as session:
            filled: list[PaperOrder] = []
            for row in (await session.execute(resting.with_for_update())).scalars().all():
                side, limit = Side(row.side), row.limit_price
                assert limit is not None
                if not rules.limit_crossed(side, limit, candle.low, candle.high):
                    continue
                base, quote, _ = split_symbol(row.symbol)
                fill = rules.limit_fill(side, row.quantity - row.filled, limit, fees=self.config.fees, quote_asset=quote)
                # Release the lock, then settle the fill from free: the lock is exactly what the
                # fill consumes (BUY: notional + maker fee at the limit; SELL: the quantity).
                await self._move(session, {row.locked_asset or quote: (row.locked_amount, -row.locked_amount)})
                row.locked_amount = _ZERO
                await self._apply_fill(session, row, fill, base)
                filled.append(row)
            states = [await self._state(session, row) for row in filled]
        for state in states:
            _log.info("paper_limit_filled", client_order_id=state.client_order_id, price=str(state.average_price))
        return states

    async def close(self) -> None:
        """Nothing to release: the sessions belong to the caller."""

    # ------------------------------------------------------------------ internals

    async def _latest(self, order: OrderRequest) -> tuple[Candle | None, str | None]:
        """The price candle as of the order's market time (the newest stored candle opened at or
        before ``reference_time``, at most one timeframe earlier), and for a market order
        without one, why it cannot fill. Later candles are never used: in a replay they are the
        future of the decision."""
        tf = self.config.timeframe
        at = order.reference_time
        try:
            if self.config.latest_price:
                candle = await self._prices.latest_candle(order.exchange, order.symbol, tf)
            else:
                # At most one timeframe back: an older candle would be a stale price.
                window = await self._prices.candles_between(
                    order.exchange, order.symbol, tf, at - timedelta(seconds=timeframe_seconds(tf)), at + _ONE_MS
                )
                candle = window[-1] if window else None
        except PriceStoreError as exc:
            if is_transient(exc):
                # InfluxDB down or restarting: the simulated market is unreachable, not the order
                # refused. Raised, so execution's bus retries the order until the store is back.
                raise
            return None, f"no price: the price store refused the query ({exc})"
        if candle is None and order.order_type is OrderType.MARKET:
            return None, (
                f"no price: no {tf} candle of {order.symbol} on {order.exchange} at {at.isoformat()} in the price store"
            )
        return candle, None

    async def _execute(self, session: AsyncSession, order: OrderRequest, candle: Candle | None) -> str | None:
        """Fill or rest the order inside ``session``; the rejection reason, or None when accepted."""
        try:
            market = self._rules_for(order.exchange, order.symbol)
        except KeyError:
            return f"unknown market {order.symbol} on {order.exchange}"
        base, quote, _ = split_symbol(order.symbol)
        cfg = self.config
        fill: rules.FillQuote | None
        try:
            if order.order_type is OrderType.MARKET:
                assert candle is not None
                # A protective exit fills at its trigger price (within its candle's range), as
                # in the backtester; any other market order at the candle's close.
                price = order.exit_price if order.exit_price is not None else candle.close
                fill = rules.market_fill(
                    order.side, order.quantity, price, market,
                    slippage_bps=cfg.slippage_bps, fees=cfg.fees, quote_asset=quote,
                )
            else:
                limit = order.limit_price
                assert limit is not None
                problem = rules.check_limit_price(limit, market) or rules.check_quantity(order.quantity, limit, market)
                if problem:
                    return problem
                fill = None
                if candle is not None:
                    fill = rules.marketable_limit_fill(
                        order.side, order.quantity, limit, candle.close, market,
                        slippage_bps=cfg.slippage_bps, fees=cfg.fees, quote_asset=quote,
                    )
        except rules.FillRejected as exc:
            return exc.reason
        if fill is not None:
            return await self._fill_now(session, order, fill, base, quote)
        if order.time_in_force is not TimeInForce.GTC:
            # IOC / FOK never rest: not marketable now means expired now (as Binance reports it).
            row = self._new_row(order, OrderStatus.EXPIRED, f"{order.time_in_force.value} limit not marketable")
            session.add(row)
            return None
        return await self._rest(session, order, candle, base, quote)

    async def _fill_now(
        self, session: AsyncSession, order: OrderRequest, fill: rules.FillQuote, base: str, quote: str
    ) -> str | None:
        asset, needed = (quote, fill.notional + fill.fee) if order.side is Side.BUY else (base, fill.quantity)
        problem = await self._check_free(session, asset, needed)
        if problem:
            return problem
        row = self._new_row(order, OrderStatus.NEW, None)
        session.add(row)
        await session.flush()
        await self._apply_fill(session, row, fill, base)
        return None

    async def _rest(
        self, session: AsyncSession, order: OrderRequest, candle: Candle | None, base: str, quote: str
    ) -> str | None:
        limit = order.limit_price
        assert limit is not None
        needed = rules.funds_needed(order.side, order.quantity, limit, self.config.fees.maker)
        asset = quote if order.side is Side.BUY else base
        problem = await self._check_free(session, asset, needed)
        if problem:
            return problem
        await self._move(session, {asset: (-needed, needed)})
        row = self._new_row(order, OrderStatus.NEW, None)
        row.locked_asset, row.locked_amount = asset, needed
        # Only candles after the decision's market time (and after the price it saw) can fill it.
        row.rests_after = max(order.reference_time, candle.open_time) if candle is not None else order.reference_time
        session.add(row)
        return None

    async def _check_free(self, session: AsyncSession, asset: str, needed: Decimal) -> str | None:
        balance = await session.scalar(select(PaperBalance).where(PaperBalance.asset == asset).with_for_update())
        free = balance.free if balance is not None else _ZERO
        if free < needed:
            return f"insufficient funds: needs {needed} {asset}, {free} {asset} free"
        return None

    async def _apply_fill(self, session: AsyncSession, row: PaperOrder, fill: rules.FillQuote, base: str) -> None:
        changes = rules.balance_changes(fill, base)
        await self._move(session, {asset: (delta, _ZERO) for asset, delta in changes.items()})
        now = self._clock()
        session.add(
            PaperFill(
                order_id=row.id, quantity=fill.quantity, price=fill.price, fee=fill.fee,
                fee_currency=fill.fee_currency, liquidity=fill.liquidity.value, time=now,
            )
        )
        total = row.filled + fill.quantity
        previous_value = (row.average_price or _ZERO) * row.filled
        row.average_price = (previous_value + fill.notional) / total
        row.filled = total
        row.status = (OrderStatus.FILLED if total == row.quantity else OrderStatus.PARTIALLY_FILLED).value
        row.updated_at = now
        await session.flush()

    async def _move(self, session: AsyncSession, changes: Mapping[str, tuple[Decimal, Decimal]]) -> None:
        """Add (free, locked) deltas per asset; the CHECKs refuse anything going negative."""
        for asset, (free, locked) in changes.items():
            # UPDATE first: an upsert would check the (possibly negative) delta row itself.
            changed = await session.execute(
                update(PaperBalance)
                .where(PaperBalance.asset == asset)
                .values(free=PaperBalance.free + free, locked=PaperBalance.locked + locked, updated_at=self._clock())
                .returning(PaperBalance.asset)
            )
            if changed.scalar_one_or_none() is None:
                session.add(PaperBalance(asset=asset, free=free, locked=locked, updated_at=self._clock()))
                await session.flush()

    def _new_row(self, order: OrderRequest, status: OrderStatus, reason: str | None) -> PaperOrder:
        now = self._clock()
        return PaperOrder(
            client_order_id=order.client_order_id, exchange=order.exchange, symbol=order.symbol,
            side=order.side.value, order_type=order.order_type.value, quantity=order.quantity,
            limit_price=order.limit_price, status=status.value, filled=_ZERO, locked_amount=_ZERO,
            reason=reason, created_at=now, updated_at=now,
        )

    async def _state(self, session: AsyncSession, row: PaperOrder) -> OrderState:
        fills: Iterable[PaperFill] = (
            await session.execute(select(PaperFill).where(PaperFill.order_id == row.id).order_by(PaperFill.id))
        ).scalars().all()
        return OrderState(
            client_order_id=row.client_order_id,
            symbol=row.symbol,
            status=OrderStatus(row.status),
            quantity=row.quantity,
            filled=row.filled,
            average_price=row.average_price,
            event_time=row.updated_at,
            exchange_order_id=f"paper-{row.id}",
            fills=tuple(
                Fill(f"paper-{row.id}-{f.id}", f.quantity, f.price, f.fee, f.fee_currency, f.time) for f in fills
            ),
            reason=row.reason,
        )
