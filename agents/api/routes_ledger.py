"""Routes over the ledger (Postgres) and the price store (InfluxDB): balances, positions with
unrealised PnL, risk state, PnL and the realised curve, orders with transitions, fills,
decisions, rejections by reason, candles with indicators, signals and chart markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from agents.api import models as m
from agents.api.auth import read_role
from agents.api.queries import OrderFilter, TimeRange, realised_curve
from agents.api.routes_system import bounded, services_of
from infra.db.ledger.types import DecisionView, PositionView
from infra.db.models.ledger import Fill
from infra.db.models.orders import Order, OrderEvent
from infra.influx import InfluxPriceStore
from infra.tokens import Role
from protocol import Indicators, Side, timeframe_seconds

router = APIRouter(dependencies=[Depends(read_role)])
Read = Annotated[Role, Depends(read_role)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Since = Annotated[datetime | None, Query(description="ISO 8601; inclusive")]
Until = Annotated[datetime | None, Query(description="ISO 8601; exclusive")]
Name = Annotated[str | None, Query(min_length=1, max_length=100)]
_ZERO = Decimal(0)
# InfluxDB stores nanoseconds since 1970 in a signed 64-bit integer: times outside are refused.
_INFLUX_FIRST = datetime(1677, 9, 22, tzinfo=UTC)
_INFLUX_LAST = datetime(2262, 4, 11, tzinfo=UTC)


def _window(since: datetime | None, until: datetime | None) -> TimeRange:
    # A naive time is read as UTC: the ledger stores timezone-aware UTC.
    def utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    try:
        window = TimeRange(utc(since), utc(until))
        if window.since is not None and window.until is not None and window.since > window.until:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "since is after until")
    except (OverflowError, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad time: {exc}") from None
    return window


# --------------------------------------------------------------------------- account


@router.get("/balances", response_model=m.Balances, tags=["account"])
async def balances(request: Request) -> m.Balances:
    found = await bounded(services_of(request).ledger.balances(), "Postgres (balances)")
    return m.Balances(balances=[m.BalanceOut(asset=b.asset, total=b.total, available=b.available, reserved=b.reserved)
                                for b in found.values()])


async def _mark(prices: InfluxPriceStore, exchange: str, symbol: str, timeframe: str) -> tuple[Decimal | None, datetime | None, str | None]:
    """(close, close time, note) of the newest stored candle; no candle: (None, None, why)."""
    try:
        candle = await prices.latest_candle(exchange, symbol, timeframe)
    except Exception as exc:
        return None, None, f"price store unavailable: {type(exc).__name__}: {str(exc)[:150]}"
    if candle is None:
        return None, None, f"no stored {timeframe} candle of {symbol} on {exchange}"
    return candle.close, candle.close_time, None


async def _positions(request: Request, strategy_id: str | None, include_flat: bool) -> list[m.PositionOut]:
    services = services_of(request)
    settings = services.settings
    found: list[PositionView] = await bounded(services.ledger.positions(strategy_id), "Postgres (positions)")
    marks: dict[str, tuple[Decimal | None, datetime | None, str | None]] = {}
    rows = []
    for p in found:
        if not include_flat and p.quantity == 0:
            continue
        if p.symbol not in marks:
            marks[p.symbol] = await bounded(_mark(services.prices, settings.exchange, p.symbol, settings.timeframe),
                                            "InfluxDB (mark price)")
        price, at, note = marks[p.symbol]
        unrealised = None
        if price is not None:
            unrealised = (price - p.average_entry_price) * p.quantity if p.average_entry_price is not None else _ZERO
        rows.append(m.PositionOut(
            strategy_id=p.strategy_id, exchange=p.exchange, symbol=p.symbol, quantity=p.quantity,
            average_entry_price=p.average_entry_price, realised_pnl=p.realised_pnl, fees_paid=p.fees_paid,
            updated_at=p.updated_at, mark_price=price, mark_time=at, unrealised_pnl=unrealised, price_note=note,
        ))
    return rows


@router.get("/positions", response_model=m.Positions, tags=["account"],
            summary="Positions with unrealised PnL at the latest stored price")
async def positions(request: Request, strategy_id: Name = None, include_flat: bool = False) -> m.Positions:
    return m.Positions(positions=await _positions(request, strategy_id, include_flat))


@router.get("/risk-state", response_model=m.RiskStateOut, tags=["account"])
async def risk_state(request: Request) -> m.RiskStateOut:
    s = await bounded(services_of(request).ledger.risk_state(), "Postgres (risk state)")
    return m.RiskStateOut(trading_state=s.trading_state.value, trading_state_reason=s.trading_state_reason,
                          emergency_stop=s.emergency_stop, emergency_reason=s.emergency_reason,
                          changed_by=s.changed_by, changed_at=s.changed_at, peak_equity=s.peak_equity)


@router.get("/pnl", response_model=m.Pnl, tags=["account"], summary="Realised PnL (ledger) and unrealised at the latest price")
async def pnl(request: Request) -> m.Pnl:
    rows = await _positions(request, None, include_flat=True)
    by: dict[str, list[Decimal]] = {}
    for p in rows:
        realised, fees = by.setdefault(p.strategy_id, [_ZERO, _ZERO])
        by[p.strategy_id] = [realised + p.realised_pnl, fees + p.fees_paid]
    open_rows = [p for p in rows if p.quantity != 0]
    unrealised = None if any(p.unrealised_pnl is None for p in open_rows) else sum((p.unrealised_pnl or _ZERO for p in open_rows), _ZERO)
    realised = sum((v[0] for v in by.values()), _ZERO)
    fees = sum((v[1] for v in by.values()), _ZERO)
    return m.Pnl(realised_pnl=realised, fees_paid=fees, net_realised=realised - fees, unrealised_pnl=unrealised,
                 by_strategy=[m.StrategyPnl(strategy_id=k, realised_pnl=v[0], fees_paid=v[1], net_realised=v[0] - v[1])
                              for k, v in sorted(by.items())])


@router.get("/equity", response_model=m.EquityCurve, tags=["account"],
            summary="Cumulative realised PnL net of fees after each fill, with drawdown")
async def equity(request: Request, since: Since = None, until: Until = None) -> m.EquityCurve:
    fills = await bounded(services_of(request).reads.all_fills(_window(since, until)), "Postgres (fills)")
    points = realised_curve(fills)
    return m.EquityCurve(points=[m.EquityPoint(time=p.time, net_realised=p.net_realised, drawdown=p.drawdown) for p in points],
                         max_drawdown=max((p.drawdown for p in points), default=_ZERO))


# --------------------------------------------------------------------------- orders, fills, decisions


def order_out(row: Order) -> dict[str, Any]:
    return {name: getattr(row, name) for name in m.OrderOut.model_fields}


def transition_out(event: OrderEvent) -> m.TransitionOut:
    return m.TransitionOut(**{name: getattr(event, name) for name in m.TransitionOut.model_fields})


def fill_out(row: Fill) -> m.FillOut:
    return m.FillOut(**{name: getattr(row, name) for name in m.FillOut.model_fields})


def _signal_fields(d: DecisionView) -> dict[str, Any]:
    return {"signal_id": str(d.signal_id), "strategy_id": d.strategy_id, "symbol": d.symbol, "side": d.side,
            "decision": d.decision.value, "reason": d.reason.value if d.reason else None, "detail": d.detail,
            "client_order_id": d.client_order_id, "decided_at": d.decided_at}


def decision_out(d: DecisionView) -> m.DecisionOut:
    return m.DecisionOut(**_signal_fields(d), id=d.id, inputs=d.inputs)


def signal_out(d: DecisionView) -> m.SignalOut:
    return m.SignalOut(**_signal_fields(d))


@router.get("/orders", response_model=m.Page[m.OrderOut], tags=["orders"], summary="Orders, newest first")
async def orders(
    request: Request, limit: Limit = 100, offset: Offset = 0, status_: Annotated[str | None, Query(alias="status", max_length=40)] = None,
    symbol: Name = None, strategy_id: Name = None, side: Side | None = None, since: Since = None, until: Until = None,
) -> m.Page[m.OrderOut]:
    where = OrderFilter(status_.upper() if status_ else None, symbol, strategy_id, side.value if side else None)
    rows, total = await bounded(services_of(request).reads.orders(where, _window(since, until), limit, offset), "Postgres (orders)")
    return m.Page[m.OrderOut](items=[m.OrderOut(**order_out(r)) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/orders/{client_order_id}", response_model=m.OrderDetail, tags=["orders"], summary="One order and its transitions")
async def order(request: Request, client_order_id: str) -> m.OrderDetail:
    found = await bounded(services_of(request).reads.order(client_order_id), "Postgres (order)")
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {client_order_id!r}")
    row, events = found
    return m.OrderDetail(**order_out(row), transitions=[transition_out(e) for e in events])


@router.get("/fills", response_model=m.Page[m.FillOut], tags=["orders"], summary="Fills, newest first")
async def fills(
    request: Request, limit: Limit = 100, offset: Offset = 0, symbol: Name = None, strategy_id: Name = None,
    client_order_id: Name = None, since: Since = None, until: Until = None,
) -> m.Page[m.FillOut]:
    rows, total = await bounded(services_of(request).reads.fills(
        symbol=symbol, strategy_id=strategy_id, client_order_id=client_order_id, window=_window(since, until),
        limit=limit, offset=offset), "Postgres (fills)")
    return m.Page[m.FillOut](items=[fill_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/decisions", response_model=m.Page[m.DecisionOut], tags=["risk"], summary="Risk decisions with their reasons")
async def decisions(
    request: Request, limit: Limit = 100, offset: Offset = 0,
    decision: Annotated[str | None, Query(pattern="^(APPROVED|REJECTED|IGNORED)$")] = None,
    reason: Annotated[str | None, Query(max_length=60)] = None, strategy_id: Name = None, symbol: Name = None,
    since: Since = None, until: Until = None,
) -> m.Page[m.DecisionOut]:
    rows, total = await bounded(services_of(request).reads.decisions(
        decision=decision, reason=reason, strategy_id=strategy_id, symbol=symbol, window=_window(since, until),
        limit=limit, offset=offset), "Postgres (decisions)")
    return m.Page[m.DecisionOut](items=[decision_out(d) for d in rows], total=total, limit=limit, offset=offset)


@router.get("/rejections/by-reason", response_model=m.RejectionsByReason, tags=["risk"])
async def rejections_by_reason(request: Request, since: Since = None, until: Until = None) -> m.RejectionsByReason:
    rows = await bounded(services_of(request).reads.rejections_by_reason(_window(since, until)), "Postgres (rejections)")
    return m.RejectionsByReason(reasons=[m.RejectionCount(reason=r, count=n, last_at=at, last_detail=d) for r, n, at, d in rows])


# --------------------------------------------------------------------------- market data


@router.get("/candles", response_model=m.CandlesOut, tags=["market"], summary="Candles with indicators, oldest first")
async def candles(
    request: Request, symbol: Annotated[str, Query(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9]+/[A-Za-z0-9]+$")],
    timeframe: Annotated[str | None, Query(max_length=5)] = None, exchange: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z0-9_-]+$")] = None,
    since: Since = None, until: Until = None, limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> m.CandlesOut:
    services = services_of(request)
    tf = timeframe or services.settings.timeframe
    try:
        step = timedelta(seconds=timeframe_seconds(tf))
    except (KeyError, ValueError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unknown timeframe {tf!r}") from None
    venue = exchange or services.settings.exchange
    window = _window(since, until)
    for moment in (window.since, window.until):
        if moment is not None and not _INFLUX_FIRST <= moment <= _INFLUX_LAST:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                f"{moment.isoformat()} is outside the price store's time range (1677-09-22 to 2262-04-11)")
    prices = services.prices
    if window.since is None and window.until is None:
        found = await bounded(prices.last_candles(venue, symbol, tf, limit), "InfluxDB (candles)")
    else:
        end = window.until or datetime.now(UTC) + step
        start = window.since or end - step * limit
        # The newest `limit` of the window, read as such: a window of years must not load years.
        found = await bounded(prices.last_candles(venue, symbol, tf, limit, start=start, end=end), "InfluxDB (candles)")
    snapshots = []
    if found:
        snapshots = await bounded(prices.indicators_between(venue, symbol, tf, found[0].open_time, found[-1].open_time + step),
                                  "InfluxDB (indicators)")
    return m.CandlesOut(
        symbol=symbol.upper(), timeframe=tf, exchange=venue,
        candles=[m.CandleOut(open_time=c.open_time, close_time=c.close_time, open=c.open, high=c.high, low=c.low,
                             close=c.close, volume=c.volume) for c in found],
        # The fixed set (null while warming up) and the declared parametrised ones (rsi_7, decision 0022).
        indicators=[m.IndicatorRow(candle_time=s.candle_time, values={
            **{name: getattr(s.indicators, name) for name in Indicators.model_fields}, **s.extra}) for s in snapshots],
    )


async def _signals(request: Request, symbol: str | None, strategy_id: str | None, window: TimeRange, limit: int) -> list[m.SignalOut]:
    rows, _ = await bounded(services_of(request).reads.decisions(
        decision=None, reason=None, strategy_id=strategy_id, symbol=symbol, window=window, limit=limit, offset=0,
        oldest_first=True), "Postgres (signals)")
    return [signal_out(d) for d in rows]


@router.get("/signals", response_model=m.Signals, tags=["market"], summary="Signals the risk manager decided, oldest first")
async def signals(request: Request, symbol: Name = None, strategy_id: Name = None, since: Since = None, until: Until = None,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> m.Signals:
    return m.Signals(signals=await _signals(request, symbol, strategy_id, _window(since, until), limit))


@router.get("/markers", response_model=m.Markers, tags=["market"], summary="Signals and fills of a symbol, for chart markers")
async def markers(request: Request, symbol: Name = None, since: Since = None, until: Until = None,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> m.Markers:
    window = _window(since, until)
    found, _ = await bounded(services_of(request).reads.fills(
        symbol=symbol, strategy_id=None, client_order_id=None, window=window, limit=limit, offset=0, oldest_first=True),
        "Postgres (fills)")
    return m.Markers(signals=await _signals(request, symbol, None, window, limit), fills=[fill_out(f) for f in found])
