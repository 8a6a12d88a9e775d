"""Settings of the risk manager: limits, sizing, clocks, the paper account (RISK_*, PAPER_BALANCES)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, field_validator

from agents.risk_manager.rules import RiskLimits
from agents.risk_manager.sizing import SizingConfig, SizingMode
from infra.exchanges.paper.seed import parse_balances
from infra.settings import DataSource, Settings, TradingMode
from protocol import split_symbol


class RiskClock(StrEnum):
    """What "now" is for price age and order-frequency windows.

    ``signal``: the close of the signal's candle (candle_time + timeframe). Replay runs as fast
    as the pipeline accepts, so the wall clock says nothing about how old a 2021 price is
    relative to a 2021 signal. ``wall``: the real clock, for live data. ``auto``: ``signal``
    when DATA_SOURCE=replay, ``wall`` when DATA_SOURCE=exchange.
    Reservation expiry always uses the wall clock: it is about processes, not markets.
    """

    AUTO = "auto"
    SIGNAL = "signal"
    WALL = "wall"


class MarketSource(StrEnum):
    """Where lot step and minimums come from: the saved ccxt snapshot, or the exchange itself."""

    AUTO = "auto"  # snapshot in paper mode, exchange in sandbox/live
    SNAPSHOT = "snapshot"
    EXCHANGE = "exchange"


class RiskSettings(Settings):
    """Settings shared by all agents plus the risk manager's own (see README, Configuration)."""

    paper_balances: str = Field(
        default="USDT:10000", alias="PAPER_BALANCES",
        description="initial paper account, ASSET:AMOUNT[,ASSET:AMOUNT]; seeded only into an empty ledger",
    )
    risk_clock: RiskClock = Field(default=RiskClock.AUTO, alias="RISK_CLOCK")
    risk_market_source: MarketSource = Field(default=MarketSource.AUTO, alias="RISK_MARKET_SOURCE")

    risk_max_price_age: float = Field(default=120.0, gt=0, alias="RISK_MAX_PRICE_AGE", description="seconds")
    risk_max_signal_age: float | None = Field(
        default=None, gt=0, alias="RISK_MAX_SIGNAL_AGE",
        description="seconds since the signal's candle closed (wall clock); empty = one timeframe",
    )
    risk_min_confidence: float = Field(default=0.0, ge=0, le=1, alias="RISK_MIN_CONFIDENCE")
    risk_max_open_positions: int = Field(default=5, ge=1, alias="RISK_MAX_OPEN_POSITIONS")
    risk_max_symbol_exposure: Decimal = Field(default=Decimal("0.5"), gt=0, alias="RISK_MAX_SYMBOL_EXPOSURE")
    risk_max_total_exposure: Decimal = Field(default=Decimal("0.9"), gt=0, alias="RISK_MAX_TOTAL_EXPOSURE")
    risk_max_orders_per_hour: int = Field(default=20, ge=1, alias="RISK_MAX_ORDERS_PER_HOUR")
    risk_max_orders_per_day: int = Field(default=200, ge=1, alias="RISK_MAX_ORDERS_PER_DAY")
    risk_min_order_interval: float = Field(default=0.0, ge=0, alias="RISK_MIN_ORDER_INTERVAL", description="seconds")
    risk_max_drawdown: Decimal = Field(default=Decimal("0.2"), gt=0, le=1, alias="RISK_MAX_DRAWDOWN")
    risk_max_order_notional: Decimal | None = Field(default=None, gt=0, alias="RISK_MAX_ORDER_NOTIONAL")
    risk_price_collar_bps: Decimal = Field(default=Decimal("100"), ge=0, alias="RISK_PRICE_COLLAR_BPS")

    risk_sizing_mode: SizingMode = Field(default=SizingMode.FRACTION, alias="RISK_SIZING_MODE")
    risk_sizing_fraction: Decimal = Field(default=Decimal("0.1"), gt=0, le=1, alias="RISK_SIZING_FRACTION")
    risk_max_trade_notional: Decimal | None = Field(default=None, gt=0, alias="RISK_MAX_TRADE_NOTIONAL")
    risk_per_trade: Decimal = Field(default=Decimal("0.01"), gt=0, le=1, alias="RISK_PER_TRADE")
    risk_atr_stop_multiple: Decimal = Field(default=Decimal("2"), gt=0, alias="RISK_ATR_STOP_MULTIPLE")
    risk_fee_buffer: Decimal = Field(default=Decimal("0.001"), ge=0, alias="RISK_FEE_BUFFER")
    risk_slippage_buffer: Decimal = Field(default=Decimal("0.001"), ge=0, alias="RISK_SLIPPAGE_BUFFER")

    risk_settle_wait: float = Field(
        default=30.0, ge=0, alias="RISK_SETTLE_WAIT",
        description="seconds a signal waits for the other open orders of its symbol to settle before it is decided",
    )
    risk_exit_signal_wait: float = Field(
        default=5.0, ge=0, alias="RISK_EXIT_SIGNAL_WAIT",
        description="seconds the candle queue waits for the strategies' signals of a candle's symbol to advance "
                    "before it decides that candle's protective exits itself (decision 0028)",
    )
    risk_order_ttl: float = Field(default=300.0, gt=0, alias="RISK_ORDER_TTL", description="seconds")
    risk_sweep_interval: float = Field(default=5.0, gt=0, alias="RISK_SWEEP_INTERVAL", description="seconds")
    risk_reconcile_interval: float = Field(default=60.0, gt=0, alias="RISK_RECONCILE_INTERVAL", description="seconds")
    risk_metrics_interval: float = Field(default=10.0, gt=0, alias="RISK_METRICS_INTERVAL", description="seconds")

    @field_validator("paper_balances")
    @classmethod
    def _check_balances(cls, value: str) -> str:
        parse_balances(value)
        return value

    @property
    def initial_balances(self) -> dict[str, Decimal]:
        return parse_balances(self.paper_balances)

    @property
    def quote_asset(self) -> str:
        """The currency equity and metrics are counted in: the first symbol's quote."""
        return split_symbol(self.symbols[0])[1] if self.symbols else "USDT"

    @property
    def signal_clock(self) -> bool:
        if self.risk_clock is RiskClock.AUTO:
            return self.data_source is DataSource.REPLAY
        return self.risk_clock is RiskClock.SIGNAL

    @property
    def markets_from_exchange(self) -> bool:
        if self.risk_market_source is MarketSource.AUTO:
            return self.trading_mode is not TradingMode.PAPER
        return self.risk_market_source is MarketSource.EXCHANGE

    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_price_age=timedelta(seconds=self.risk_max_price_age),
            min_confidence=self.risk_min_confidence,
            max_open_positions=self.risk_max_open_positions,
            max_symbol_exposure=self.risk_max_symbol_exposure,
            max_total_exposure=self.risk_max_total_exposure,
            max_orders_per_hour=self.risk_max_orders_per_hour,
            max_orders_per_day=self.risk_max_orders_per_day,
            min_order_interval=timedelta(seconds=self.risk_min_order_interval),
            max_drawdown=self.risk_max_drawdown,
            max_order_notional=self.risk_max_order_notional,
            price_collar_bps=self.risk_price_collar_bps,
            max_signal_age=None if self.risk_max_signal_age is None else timedelta(seconds=self.risk_max_signal_age),
        )

    def sizing(self) -> SizingConfig:
        return SizingConfig(
            mode=self.risk_sizing_mode,
            fraction=self.risk_sizing_fraction,
            max_trade_notional=self.risk_max_trade_notional,
            risk_fraction=self.risk_per_trade,
            stop_multiple=self.risk_atr_stop_multiple,
            fee_buffer=self.risk_fee_buffer,
            slippage_buffer=self.risk_slippage_buffer,
        )
