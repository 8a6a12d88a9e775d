"""Execution settings, and the rule that decides whether the agent may trade real money."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from pydantic import Field, SecretStr, field_validator

from infra.exchanges.paper.fills import FeeRates
from infra.exchanges.paper.seed import parse_balances
from infra.settings import Settings, TradingMode

__all__ = ["LIVE_CONFIRMATION", "ExecutionSettings", "refusal_reason"]

# Live trading needs this exact phrase in LIVE_TRADING_CONFIRM, on top of TRADING_MODE=live and
# API keys: a flag flipped by accident is not consent.
LIVE_CONFIRMATION: Final = "I understand real money is at risk"


class ExecutionSettings(Settings):
    """Settings of the execution agent (EXECUTION_*, PAPER_*, live trading opt-in, API keys)."""

    paper_balances: str = Field(
        default="USDT:10000", alias="PAPER_BALANCES", description="starting paper account, ASSET:AMOUNT,..."
    )
    paper_slippage_bps: Decimal = Field(default=Decimal(5), ge=0, le=1000, alias="PAPER_SLIPPAGE_BPS")
    paper_taker_fee: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1, alias="PAPER_TAKER_FEE")
    paper_maker_fee: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1, alias="PAPER_MAKER_FEE")

    live_trading_confirm: str | None = Field(default=None, alias="LIVE_TRADING_CONFIRM")
    exchange_api_key: SecretStr | None = Field(default=None, alias="EXCHANGE_API_KEY")
    exchange_api_secret: SecretStr | None = Field(default=None, alias="EXCHANGE_API_SECRET")

    execution_reconcile_interval: float = Field(default=30.0, gt=0, alias="EXECUTION_RECONCILE_INTERVAL")
    execution_rate_limit_retries: int = Field(default=5, ge=0, le=50, alias="EXECUTION_RATE_LIMIT_RETRIES")
    execution_rate_limit_backoff: float = Field(default=0.5, gt=0, alias="EXECUTION_RATE_LIMIT_BACKOFF")
    execution_http_timeout: float = Field(
        default=10.0, gt=0, le=120, alias="EXECUTION_HTTP_TIMEOUT", description="seconds per exchange request",
    )
    execution_recv_window: float = Field(
        default=5.0, gt=0, le=60, alias="EXECUTION_RECV_WINDOW",
        description="seconds the exchange may act on a signed request (Binance recvWindow)",
    )
    execution_unknown_margin: float = Field(
        default=5.0, ge=0, alias="EXECUTION_UNKNOWN_MARGIN",
        description="seconds past the receive window before a not-found UNKNOWN order counts as never placed",
    )
    execution_drift_tolerance: Decimal = Field(
        default=Decimal("0.0001"), ge=0, lt=1, alias="EXECUTION_DRIFT_TOLERANCE",
        description="ledger vs exchange balance difference (fraction) that counts as drift",
    )
    execution_drift_interval: float = Field(default=60.0, gt=0, alias="EXECUTION_DRIFT_INTERVAL", description="seconds")
    execution_max_submits: int = Field(default=3, ge=1, le=20, alias="EXECUTION_MAX_SUBMITS")
    # TEST ONLY: exit the process (os._exit, no cleanup, no ack) right after the exchange
    # accepted an order, before execution recorded it; the crash test proves recovery.
    execution_test_crash_after_place: bool = Field(default=False, alias="EXECUTION_TEST_CRASH_AFTER_PLACE")

    @field_validator("paper_balances")
    @classmethod
    def _valid_balances(cls, value: str) -> str:
        parse_balances(value)
        return value

    @property
    def paper_seed(self) -> dict[str, Decimal]:
        return parse_balances(self.paper_balances)

    @property
    def paper_fees(self) -> FeeRates:
        return FeeRates(taker=self.paper_taker_fee, maker=self.paper_maker_fee)


def _has(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


def refusal_reason(settings: ExecutionSettings) -> str | None:
    """Why the agent must not start in this configuration, or None. Never mentions key values."""
    mode = settings.trading_mode
    if mode is TradingMode.PAPER:
        return None
    keys = _has(settings.exchange_api_key) and _has(settings.exchange_api_secret)
    if mode is TradingMode.LIVE and settings.live_trading_confirm != LIVE_CONFIRMATION:
        return (
            "TRADING_MODE=live needs LIVE_TRADING_CONFIRM set to exactly "
            f"{LIVE_CONFIRMATION!r}; refusing to trade real money without it"
        )
    if not keys:
        return f"TRADING_MODE={mode.value} needs EXCHANGE_API_KEY and EXCHANGE_API_SECRET"
    return None
