"""Risk metrics: equity from balances at mark, exposure, heat, drawdown, score and warning level."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from agents.risk_manager.metrics import (
    UnpricedAsset,
    account_figures,
    drawdown,
    risk_metrics,
    risk_score,
    warning_level,
)
from agents.risk_manager.rules import RiskLimits
from infra.db.ledger import BalanceView, PositionView
from protocol import TradingState, WarningLevel

LIMITS = RiskLimits(max_total_exposure=D("0.8"), max_drawdown=D("0.2"), max_open_positions=4)


def bal(asset: str, available: str, reserved: str = "0") -> BalanceView:
    return BalanceView(asset, D(available) + D(reserved), D(available), D(reserved))


def pos(strategy: str, symbol: str, qty: str) -> PositionView:
    return PositionView(strategy, "binance", symbol, D(qty), D("40000") if D(qty) else None, D(0), D(0))


BALANCES = {"USDT": bal("USDT", "5000", "1000"), "BTC": bal("BTC", "0.1")}
POSITIONS = [pos("a", "BTC/USDT", "0.06"), pos("b", "BTC/USDT", "0.04"), pos("c", "ETH/USDT", "0")]
MARKS = {"BTC": D("50000")}


def test_equity_and_exposure_at_mark() -> None:
    figures = account_figures(BALANCES, POSITIONS, MARKS, "USDT")
    assert figures.equity == D("11000")  # 6000 USDT + 0.1 BTC x 50000
    assert figures.exposure_by_symbol == {"BTC/USDT": D("5000")}
    assert figures.total_exposure == D("5000")
    assert figures.open_positions == 2


def test_a_held_asset_without_a_price_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnpricedAsset):
        account_figures(BALANCES, POSITIONS, {}, "USDT")


def test_drawdown_from_persisted_peak() -> None:
    assert drawdown(D("9000"), D("10000")) == D("0.1")
    assert drawdown(D("11000"), D("10000")) == 0
    assert drawdown(D("9000"), None) == 0


def test_score_weights_and_levels() -> None:
    assert risk_score(D(0), D(0), 0, LIMITS) == 0
    assert risk_score(D("0.8"), D("0.2"), 4, LIMITS) == 100
    assert risk_score(D("0.4"), D("0.1"), 2, LIMITS) == 50  # 20 + 20 + 10
    assert risk_score(D("5"), D("1"), 40, LIMITS) == 100  # saturates
    active = TradingState.ACTIVE
    assert warning_level(D("49.99"), D(0), active, False, LIMITS) is WarningLevel.SAFE
    assert warning_level(D("50"), D(0), active, False, LIMITS) is WarningLevel.WARNING
    assert warning_level(D("10"), D(0), TradingState.REDUCING, False, LIMITS) is WarningLevel.WARNING
    assert warning_level(D("75"), D(0), active, False, LIMITS) is WarningLevel.CRITICAL
    assert warning_level(D("0"), D("0.2"), active, False, LIMITS) is WarningLevel.CRITICAL
    assert warning_level(D("0"), D(0), active, True, LIMITS) is WarningLevel.CRITICAL
    assert warning_level(D("0"), D(0), TradingState.HALTED, False, LIMITS) is WarningLevel.CRITICAL


def test_risk_metrics_message() -> None:
    figures = account_figures(BALANCES, POSITIONS, MARKS, "USDT")
    message = risk_metrics(
        source="risk_manager", quote_asset="USDT", figures=figures, balances=BALANCES,
        peak_equity=D("12000"), trading_state=TradingState.ACTIVE, emergency_stop=False, limits=LIMITS,
    )
    assert message.equity == D("11000")
    assert message.heat == D("5000") / D("11000")
    assert (message.reserved, message.available) == (D("1000"), D("5000"))
    assert message.drawdown == D("1000") / D("12000")
    assert message.open_positions == 2
    # 40 x 0.4545/0.8 + 40 x 0.0833/0.2 + 20 x 2/4 = 22.73 + 16.67 + 10 = 49.39
    assert message.risk_score == D("49.39")
    assert message.warning_level is WarningLevel.SAFE
