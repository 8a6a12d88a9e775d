"""Account risk figures from ledger views and mark prices. Pure (no I/O), Decimal only.

Definitions (all in the quote asset, e.g. USDT):

- equity = Σ over assets of total balance x mark (the quote asset marks at 1). Balances, not
  positions, because the account can hold assets no strategy bought (a seeded balance).
- total exposure = Σ over positions of |quantity| x mark of the position's symbol.
- heat = total exposure / equity (may exceed 1).
- reserved / available = the quote asset's reserved / available balance.
- drawdown = (peak equity - equity) / peak equity, clamped to [0, 1]; the peak is persisted
  by the ledger (``record_peak_equity``) so a restart does not forget it.
- risk score (0-100) = 40 x min(heat / max heat, 1) + 40 x min(drawdown / drawdown pause, 1)
  + 20 x min(open positions / max open positions, 1).
- warning level: CRITICAL when the emergency stop is engaged, trading is HALTED, the drawdown
  reached the pause threshold or the score is >= 75; WARNING when the score is >= 50 or trading
  is REDUCING; SAFE otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from agents.risk_manager.rules import RiskLimits
from protocol import RiskMetrics, TradingState, WarningLevel, split_symbol

__all__ = [
    "CRITICAL_SCORE",
    "AccountFigures",
    "account_figures",
    "WARNING_SCORE",
    "UnpricedAsset",
    "drawdown",
    "equity",
    "exposure",
    "risk_metrics",
    "risk_score",
    "warning_level",
]

_ZERO = Decimal(0)
_ONE = Decimal(1)
WARNING_SCORE = Decimal(50)
CRITICAL_SCORE = Decimal(75)
_CENT = Decimal("0.01")


class BalanceView(Protocol):
    """What metrics read of a balance (``infra.db.ledger.BalanceView`` fits)."""

    @property
    def total(self) -> Decimal: ...
    @property
    def available(self) -> Decimal: ...
    @property
    def reserved(self) -> Decimal: ...


class PositionView(Protocol):
    """What metrics read of a position (``infra.db.ledger.PositionView`` fits)."""

    @property
    def strategy_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...


class UnpricedAsset(ValueError):
    """A held asset has no mark price: equity cannot be computed (no price is made up)."""


def _ratio(value: Decimal, limit: Decimal | int) -> Decimal:
    limit = Decimal(limit)
    if limit <= _ZERO:
        return _ONE if value > _ZERO else _ZERO
    return min(value / limit, _ONE)


def equity(balances: Mapping[str, BalanceView], marks: Mapping[str, Decimal], quote_asset: str) -> Decimal:
    """Σ total x mark; ``marks`` maps an asset code to its price in ``quote_asset``."""
    total = _ZERO
    for asset, balance in balances.items():
        if balance.total == _ZERO:
            continue
        if asset == quote_asset:
            total += balance.total
            continue
        mark = marks.get(asset)
        if mark is None:
            raise UnpricedAsset(f"no {asset}/{quote_asset} price to value {balance.total} {asset}")
        total += balance.total * mark
    return total


def exposure(positions: Iterable[PositionView], marks: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Exposure per symbol: Σ |quantity| x mark of the symbol's base asset."""
    result: dict[str, Decimal] = {}
    for position in positions:
        if position.quantity == _ZERO:
            continue
        base, _, _ = split_symbol(position.symbol)
        mark = marks.get(base)
        if mark is None:
            raise UnpricedAsset(f"no price to value the {position.symbol} position of {position.strategy_id}")
        result[position.symbol] = result.get(position.symbol, _ZERO) + abs(position.quantity) * mark
    return result


def drawdown(current: Decimal, peak: Decimal | None) -> Decimal:
    """Fall from the peak as a fraction in [0, 1]."""
    if peak is None or peak <= _ZERO:
        return _ZERO
    return min(max((peak - current) / peak, _ZERO), _ONE)


def risk_score(heat: Decimal, dd: Decimal, open_positions: int, limits: RiskLimits) -> Decimal:
    """Composite 0-100 score; see the module docstring for the weights."""
    score = (
        40 * _ratio(heat, limits.max_total_exposure)
        + 40 * _ratio(dd, limits.max_drawdown)
        + 20 * _ratio(Decimal(open_positions), limits.max_open_positions)
    )
    return score.quantize(_CENT, rounding=ROUND_HALF_UP)


def warning_level(
    score: Decimal, dd: Decimal, state: TradingState, emergency_stop: bool, limits: RiskLimits
) -> WarningLevel:
    """SAFE / WARNING / CRITICAL with the thresholds of the module docstring."""
    if emergency_stop or state is TradingState.HALTED or dd >= limits.max_drawdown or score >= CRITICAL_SCORE:
        return WarningLevel.CRITICAL
    if score >= WARNING_SCORE or state is TradingState.REDUCING:
        return WarningLevel.WARNING
    return WarningLevel.SAFE


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """Equity and exposure of the account at the current marks."""

    equity: Decimal
    exposure_by_symbol: dict[str, Decimal]
    open_positions: int

    @property
    def total_exposure(self) -> Decimal:
        return sum(self.exposure_by_symbol.values(), _ZERO)


def account_figures(
    balances: Mapping[str, BalanceView],
    positions: Iterable[PositionView],
    marks: Mapping[str, Decimal],
    quote_asset: str,
) -> AccountFigures:
    """Equity, exposure per symbol and the number of non-flat positions."""
    positions = list(positions)
    return AccountFigures(
        equity=equity(balances, marks, quote_asset),
        exposure_by_symbol=exposure(positions, marks),
        open_positions=sum(1 for p in positions if p.quantity != _ZERO),
    )


def risk_metrics(
    *,
    source: str,
    quote_asset: str,
    figures: AccountFigures,
    balances: Mapping[str, BalanceView],
    peak_equity: Decimal | None,
    trading_state: TradingState,
    emergency_stop: bool,
    limits: RiskLimits,
) -> RiskMetrics:
    """The ``risk.metrics`` message for the current account."""
    eq = figures.equity
    total = figures.total_exposure
    # Spot balances are never negative, so equity is 0 only for an empty account (no exposure).
    heat = total / eq if eq > _ZERO else _ZERO
    dd = drawdown(eq, peak_equity)
    score = risk_score(heat, dd, figures.open_positions, limits)
    quote = balances.get(quote_asset)
    return RiskMetrics(
        source=source,
        quote_asset=quote_asset,
        equity=eq,
        total_exposure=total,
        heat=heat,
        reserved=quote.reserved if quote else _ZERO,
        available=quote.available if quote else _ZERO,
        drawdown=dd,
        risk_score=score,
        warning_level=warning_level(score, dd, trading_state, emergency_stop, limits),
        trading_state=trading_state,
        open_positions=figures.open_positions,
    )
