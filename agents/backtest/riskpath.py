"""The risk manager's decision in a backtest: the live rules on the simulated account.

Every BUY/SELL a strategy publishes goes through ``agents.risk_manager.rules.decide`` — the
function the live risk manager's ``evaluate`` calls — with a ``RiskSnapshot`` built by the live
``agents.risk_manager.snapshot.risk_snapshot`` from this account's own figures (equity and the
live ``Holdings`` of one symbol, every position at the reference price: the simple case of what
``holdings``/``equity`` compute from ledger views, without their generality per signal). Nothing
of the rules is copied here; what this module owns is the account's state in ledger terms, kept
as the live ledger keeps it:

- the peak equity is recorded by each decided BUY/SELL, before deciding, at the reference price
  (the replay's signal clock; HOLDs record nothing, as live);
- order times are the approvals' decision times (the candle close), per strategy;
- an approval is remembered per (strategy, side, candle) for the duplicate check;
- no reservation stays open between signals: a market order is filled (or refused by the
  exchange) before the next signal is decided, as the live risk manager waits for settlement.

``RiskPath.unlimited`` is the strategy alone (the backtester's model before issue #18, kept for
the agreement test with backtesting.py): no limit can refuse, sizing's buffers equal the fee
and the slippage, so all-in spends the whole balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from agents.risk_manager.rules import Approved, Outcome, Rejected, RiskLimits, decide
from agents.risk_manager.sizing import SizingConfig, SizingMode
from agents.risk_manager.holdings import Holdings
from agents.risk_manager.snapshot import AccountValue, risk_snapshot
from infra.exchanges import MarketRules
from protocol import SignalSide, split_symbol

__all__ = ["RiskPath", "SignalFacts", "SimAccount"]

_ZERO = Decimal(0)
_DAY = timedelta(days=1)
_NONE_PER_DAY = 10**9


class SignalFacts(NamedTuple):
    """What the rules read of a signal (``rules.SignalFacts``), without a message envelope."""

    side: SignalSide
    confidence: float
    price: Decimal
    candle_time: datetime
    timeframe: str
    exchange: str
    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class RiskPath:
    """The limits and sizing a backtest decides with (the live RISK_* settings by default)."""

    limits: RiskLimits = field(default_factory=RiskLimits)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    limited: bool = True

    @classmethod
    def from_settings(cls, settings: Any, *, fraction: Decimal | None = None) -> RiskPath:
        """From a ``RiskSettings`` (RISK_* environment / .env, the live defaults); ``fraction``
        overrides RISK_SIZING_FRACTION."""
        sizing = settings.sizing()
        if fraction is not None:
            sizing = SizingConfig(**{**_fields(sizing), "fraction": fraction})
        return cls(settings.limits(), sizing)

    @classmethod
    def unlimited(cls, *, fraction: Decimal, taker_fee: Decimal, slippage_bps: Decimal) -> RiskPath:
        """No limit refuses; buffers are exactly the fee and the slippage (all-in spends it all)."""
        limits = RiskLimits(
            max_price_age=timedelta(days=3650), max_open_positions=_NONE_PER_DAY,
            max_symbol_exposure=Decimal(_NONE_PER_DAY), max_total_exposure=Decimal(_NONE_PER_DAY),
            max_orders_per_hour=_NONE_PER_DAY, max_orders_per_day=_NONE_PER_DAY, max_drawdown=Decimal(2),
            price_collar_bps=Decimal(_NONE_PER_DAY), max_signal_age=timedelta(days=3650),
        )
        sizing = SizingConfig(mode=SizingMode.FRACTION, fraction=fraction, fee_buffer=taker_fee,
                              slippage_buffer=slippage_bps / Decimal(10000))
        return cls(limits, sizing, limited=False)

    def as_dict(self) -> dict[str, Any]:
        limits = {k: (v.total_seconds() if isinstance(v, timedelta) else v) for k, v in _fields(self.limits).items()}
        return {
            "limits": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in limits.items()} if self.limited else None,
            "sizing": {k: (str(v) if isinstance(v, Decimal) else getattr(v, "value", v)) for k, v in _fields(self.sizing).items()},
        }


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


class _Balance(NamedTuple):
    total: Decimal
    available: Decimal
    reserved: Decimal


class _Position(NamedTuple):
    strategy_id: str
    exchange: str
    symbol: str
    quantity: Decimal


class SimAccount:
    """One account shared by a backtest's strategies: quote cash and each strategy's position
    in one symbol, in exact Decimals, changed only by fills."""

    def __init__(self, cash: Decimal, rules: MarketRules, exchange: str, path: RiskPath) -> None:
        self.cash = cash
        self.rules, self.exchange, self.path = rules, exchange, path
        self.symbol = rules.symbol
        self.base, self.quote, _ = split_symbol(rules.symbol)
        self.positions: dict[str, Decimal] = {}
        # Σ positions (the base balance), kept by ``settle``.
        self.base_total = _ZERO
        self.peak: Decimal | None = None
        self._approvals: dict[str, list[datetime]] = {}
        self._approved: set[tuple[str, SignalSide, datetime]] = set()

    def decide(
        self, strategy_id: str, facts: SignalFacts, reference: Decimal, now: datetime, mark: Decimal | None = None,
        atr: Decimal | None = None,
    ) -> Outcome:
        """The live decision on ``facts`` at risk-clock ``now`` with ``reference`` as the price.
        ``mark``: what holdings are valued at when it is not ``reference`` (a protective exit is
        sized at its trigger price, the account valued at its candle's close, as live).
        ``atr``: the signal candle's ATR (ATR sizing reads it; the risk manager reads the stored one)."""
        # The account's own figures, as ``holdings``/``equity`` would compute them from its
        # views: one symbol, no open reservation between signals, every position at ``reference``.
        cash = self.cash
        balances = {self.quote: _Balance(cash, cash, _ZERO)}
        held = self.base_total
        if held:
            balances[self.base] = _Balance(held, held, _ZERO)
        own = self.positions.get(strategy_id, _ZERO)
        exposure = held * (reference if mark is None else mark)
        value = AccountValue(cash + exposure, Holdings(
            sellable=own, has_exposure=own > _ZERO, open_positions=sum(1 for q in self.positions.values() if q),
            symbol_exposure=exposure, total_exposure=exposure,
        ))
        if value.error is None and value.equity > _ZERO:
            self.peak = value.equity if self.peak is None else max(self.peak, value.equity)
        times = self._approvals.setdefault(strategy_id, [])
        since = now - _DAY
        while times and times[0] < since:
            times.pop(0)
        snap = risk_snapshot(
            value, balances, symbol=self.symbol, now=now, reference_price=reference, price_time=now,
            peak_equity=self.peak, order_times=times,
            approved_same_candle=(strategy_id, facts.side, facts.candle_time) in self._approved, atr=atr,
        )
        outcome, _ = decide(facts, snap, self.path.limits, self.path.sizing, self.rules)
        if isinstance(outcome, Approved):
            times.append(now)
            self._approved.add((strategy_id, facts.side, facts.candle_time))
        return outcome

    def settle(self, strategy_id: str, buying: bool, quantity: Decimal, cash_change: Decimal) -> None:
        """Book a fill: the strategy's position and the quote cash."""
        signed = quantity if buying else -quantity
        self.positions[strategy_id] = self.positions.get(strategy_id, _ZERO) + signed
        self.base_total += signed
        self.cash += cash_change


def rejection_text(outcome: Rejected) -> str:
    """A rejection as the backtest lists it: the live reason code, then the detail."""
    return f"{outcome.reason.value}: {outcome.detail}"


# The RISK_* settings a backtest decides with: those that feed ``limits()`` and ``sizing()``
# (clocks, waits and intervals are about processes, not decisions).
RISK_OPTIONS: tuple[str, ...] = (
    "RISK_MAX_PRICE_AGE", "RISK_MAX_SIGNAL_AGE", "RISK_MIN_CONFIDENCE", "RISK_MAX_OPEN_POSITIONS",
    "RISK_MAX_SYMBOL_EXPOSURE", "RISK_MAX_TOTAL_EXPOSURE", "RISK_MAX_ORDERS_PER_HOUR", "RISK_MAX_ORDERS_PER_DAY",
    "RISK_MIN_ORDER_INTERVAL", "RISK_MAX_DRAWDOWN", "RISK_MAX_ORDER_NOTIONAL", "RISK_PRICE_COLLAR_BPS",
    "RISK_SIZING_MODE", "RISK_SIZING_FRACTION", "RISK_MAX_TRADE_NOTIONAL", "RISK_PER_TRADE",
    "RISK_ATR_STOP_MULTIPLE", "RISK_FEE_BUFFER", "RISK_SLIPPAGE_BUFFER",
)


def risk_overrides(text: str | None) -> dict[str, str]:
    """``KEY=VALUE[,KEY=VALUE]`` as RISK_* names (the prefix and the case may be left out:
    ``max_symbol_exposure=0.8``); ValueError names a key that is not one of ``RISK_OPTIONS``."""
    given: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        name = key.strip().upper()
        name = name if name.startswith("RISK_") else f"RISK_{name}"
        if not sep or name not in RISK_OPTIONS:
            raise ValueError(f"{part.strip()!r}: expected KEY=VALUE with KEY one of {', '.join(RISK_OPTIONS)}")
        given[name] = value.strip()
    return given


def risk_settings(overrides: str | None = None) -> Any:
    """The live risk manager's ``RiskSettings`` (environment, .env, defaults), with
    ``overrides`` (``risk_overrides``) on top, validated by the settings model; ValueError
    names an unknown key or a refused value."""
    from pydantic import ValidationError

    from agents.risk_manager.settings import RiskSettings

    given = risk_overrides(overrides)
    try:
        return RiskSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"risk settings refused: {problems}") from None
