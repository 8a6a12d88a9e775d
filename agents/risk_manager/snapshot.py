"""The risk snapshot from an account's views. Pure (no I/O).

One way from "what the account holds" to the ``RiskSnapshot`` the rules decide on, used by the
live agent (views read from the ledger) and by the backtester (views of its simulated account,
``agents/backtest/riskpath.py``), so both decide on figures computed the same way: equity at
the marks, holdings and exposure (``holdings``), drawdown from the peak recorded so far.

Two steps, because the agent records the peak equity (a ledger write) between them:
``value_account`` (equity and holdings, or why the account cannot be valued), then
``risk_snapshot``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from agents.risk_manager.holdings import Holdings, holdings
from agents.risk_manager.metrics import BalanceView, UnpricedAsset, drawdown, equity
from agents.risk_manager.rules import RiskSnapshot
from infra.db.ledger import ReservationView
from protocol import TradingState, split_symbol

__all__ = ["AccountValue", "risk_snapshot", "value_account"]

_ZERO = Decimal(0)
# Per signal in a backtest: the split of the few symbols seen, once.
_assets = lru_cache(maxsize=256)(split_symbol)


@dataclass(frozen=True, slots=True)
class AccountValue:
    """Equity and the strategy's holdings at the marks; ``error`` when a held asset has no
    mark (then equity is 0 and holdings None: the rules refuse with NO_PRICE)."""

    equity: Decimal
    held: Holdings | None
    error: str | None = None


def value_account(
    balances: Mapping[str, BalanceView],
    positions: Iterable[object],
    reservations: Iterable[ReservationView],
    marks: Mapping[str, Decimal],
    *,
    strategy_id: str,
    exchange: str,
    symbol: str,
) -> AccountValue:
    """Equity (Σ balance x mark) and ``holdings`` of ``strategy_id`` in ``symbol``."""
    quote = split_symbol(symbol)[1]
    try:
        held = holdings(positions, reservations, marks, strategy_id=strategy_id, exchange=exchange, symbol=symbol)  # type: ignore[arg-type]
        return AccountValue(equity(balances, marks, quote), held)
    except UnpricedAsset as exc:
        return AccountValue(_ZERO, None, str(exc))


def risk_snapshot(
    value: AccountValue,
    balances: Mapping[str, BalanceView],
    *,
    symbol: str,
    now: datetime,
    reference_price: Decimal | None,
    price_time: datetime | None,
    peak_equity: Decimal | None,
    order_times: Sequence[datetime],
    trading_state: TradingState = TradingState.ACTIVE,
    emergency_stop: bool = False,
    emergency_reason: str | None = None,
    approved_same_candle: bool = False,
    atr: Decimal | None = None,
    ledger_drift: str | None = None,
    strategy_paused: str | None = None,
) -> RiskSnapshot:
    """The snapshot ``rules.decide`` reads. ``peak_equity``: the highest equity recorded so far
    (None: none yet, the current equity is the peak)."""
    base, quote, _ = _assets(symbol)
    quote_balance, base_balance = balances.get(quote), balances.get(base)
    held, eq = value.held, value.equity
    peak = peak_equity if peak_equity is not None else eq
    return RiskSnapshot(
        now=now,
        trading_state=trading_state,
        emergency_stop=emergency_stop,
        emergency_reason=emergency_reason,
        reference_price=reference_price,
        price_time=price_time,
        available_quote=quote_balance.available if quote_balance else _ZERO,
        available_base=base_balance.available if base_balance else _ZERO,
        equity=eq,
        position=held.sellable if held else _ZERO,
        has_exposure=held.has_exposure if held else False,
        open_positions=held.open_positions if held else 0,
        symbol_exposure=held.symbol_exposure if held else _ZERO,
        total_exposure=held.total_exposure if held else _ZERO,
        order_times=tuple(order_times),
        drawdown=drawdown(eq, max(peak, eq)),
        approved_same_candle=approved_same_candle,
        atr=atr if atr is not None and atr > 0 else None,
        valuation_error=value.error,
        ledger_drift=ledger_drift,
        strategy_paused=strategy_paused,
    )
