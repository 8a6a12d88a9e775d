"""Reference prices and marks from InfluxDB. A missing price stays missing: nothing is made up.

The reference price of a signal is the close of a candle in the price store, and its time is
that candle's close time. Which candle depends on the risk clock (``RiskSettings.signal_clock``):

- signal clock (replay): "now" is the close of the signal's candle, and the reference is the
  newest stored candle that closed no later than that and within ``max_age`` of it — normally
  the signal's own candle. Data collection may already be far ahead in a replay; a later
  candle would be a price from the signal's future.
- wall clock (live): "now" is the real time and the reference is the newest stored candle.

Either way ``rules.check_price`` then refuses a missing (NO_PRICE) or too old (STALE_PRICE) one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from infra.faults import is_transient
from infra.influx import InfluxPriceStore, PriceStoreError
from infra.logging import get_logger
from protocol import Signal, timeframe_seconds

__all__ = ["PriceReading", "atr_at", "latest_close", "marks", "reference_price", "risk_now"]

_log = get_logger(component="risk_prices")
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class PriceReading:
    """The risk clock's "now", the reference price, its time (the candle's close) and the
    candle's open time (``OrderRequest.reference_time``); None when there is no price."""

    now: datetime
    price: Decimal | None
    price_time: datetime | None
    candle_open: datetime | None = None
    error: str | None = None


def risk_now(signal: Signal, *, signal_clock: bool, wall_now: datetime) -> datetime:
    """The risk clock's "now" for ``signal``: its candle's close (signal clock) or the wall time."""
    return signal.candle_time + timedelta(seconds=timeframe_seconds(signal.timeframe)) if signal_clock else wall_now


async def reference_price(
    store: InfluxPriceStore, signal: Signal, *, signal_clock: bool, max_age: timedelta, wall_now: datetime
) -> PriceReading:
    """Read the reference price for ``signal``; a store refusal reads as "no price".

    A store that is unreachable raises instead (transient, infra.faults): the bus retries the
    signal until InfluxDB is back, so an outage never turns into a NO_PRICE rejection that an
    undisturbed run would not have made."""
    tf = timedelta(seconds=timeframe_seconds(signal.timeframe))
    now = risk_now(signal, signal_clock=signal_clock, wall_now=wall_now)
    series = (signal.exchange, signal.symbol, signal.timeframe)
    try:
        if signal_clock:
            # Candles whose close lies in [now - max_age, now]: open_time in [now - max_age - tf, candle_time].
            window = await store.candles_between(*series, now - max_age - tf, signal.candle_time + _ONE_MS)
            if window:
                return PriceReading(now, window[-1].close, window[-1].close_time, window[-1].open_time)
        latest = await store.latest_candle(*series)
    except PriceStoreError as exc:
        if is_transient(exc):
            raise  # InfluxDB down or restarting: the signal is retried, not decided without a price
        _log.warning("reference_price_unavailable", symbol=signal.symbol, error=str(exc))
        return PriceReading(now, None, None, error=f"price store refused the query: {exc}")
    if latest is None or (signal_clock and latest.close_time > now):
        # Nothing stored, or (signal clock) only candles from after the signal: no usable price.
        return PriceReading(now, None, None)
    return PriceReading(now, latest.close, latest.close_time, latest.open_time)


async def latest_close(
    store: InfluxPriceStore, exchange: str, symbol: str, timeframe: str, at: datetime | None = None
) -> Decimal | None:
    """The newest stored close (any age) to mark a holding; None if there is none.

    ``at`` (the signal clock's "now"): only candles that closed at or before it count. In a
    replay data collection stores candles far ahead of the signal being decided; marking with
    them would measure equity and drawdown with prices from the signal's future."""
    opened_before = None
    if at is not None:
        opened_before = at - timedelta(seconds=timeframe_seconds(timeframe)) + _ONE_MS
    try:
        candle = await store.latest_candle(exchange, symbol, timeframe, opened_before=opened_before)
    except PriceStoreError as exc:
        if is_transient(exc):
            raise  # InfluxDB down or restarting: the signal is retried, not decided without a price
        _log.warning("mark_price_unavailable", symbol=symbol, error=str(exc))
        return None
    return candle.close if candle is not None else None


async def marks(
    store: InfluxPriceStore, exchange: str, quote: str, assets: set[str], timeframe: str, at: datetime | None = None
) -> dict[str, Decimal]:
    """Close of each asset against ``quote`` (as of ``at``, see ``latest_close``); assets
    without one are left out."""
    found: dict[str, Decimal] = {}
    for asset in sorted(assets):
        price = await latest_close(store, exchange, f"{asset}/{quote}", timeframe, at)
        if price is not None:
            found[asset] = price
    return found


async def atr_at(store: InfluxPriceStore, signal: Signal) -> Decimal | None:
    """The ATR stored for the signal's own candle (ATR sizing, when the signal did not carry it)."""
    try:
        snapshots = await store.indicators_between(
            signal.exchange, signal.symbol, signal.timeframe, signal.candle_time, signal.candle_time + _ONE_MS
        )
    except PriceStoreError as exc:
        if is_transient(exc):
            raise  # InfluxDB down or restarting: the signal is retried, not decided without a price
        _log.warning("atr_unavailable", symbol=signal.symbol, error=str(exc))
        return None
    return snapshots[-1].indicators.atr if snapshots else None
