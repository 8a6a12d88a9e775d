"""Parity: the same candles through the backtester and through the five agents on the bus.

Both sides are reduced to the same three things, keyed by (strategy id, signal candle, side):

- signals: what each strategy published (the backtester's on-change signals; the risk
  manager's audit on the bus, where every signal is decided, a HOLD as IGNORED);
- decisions: APPROVED, IGNORED (a HOLD) or the rejection's reason code;
- fills: quantity and average price of each filled order.

Protective exits (decision 0023) are compared as SELLs of their own, keyed by the exit reason.

The backtester runs the live model (``FillAt.CLOSE``: the risk manager's reference price is the
signal candle's close and the paper exchange fills there), the TA agent's rolling indicator
window (``live_window``) with no warm-up before the slice (a fresh replay has none), all the
enabled instances of the strategy config on one account (``run_shared``, each with its
``[strategies.exits]``), and the risk and
paper-exchange settings from the same environment the agents read (RISK_*, PAPER_*).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.table import Table

from agents.backtest.data import Bars, Window
from agents.backtest.engine import BacktestConfig, BacktestResult, run_shared
from agents.backtest.riskpath import RiskPath
from agents.backtest.simulate import FillAt
from agents.strategy.config import StrategyInstanceConfig
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules
from infra.exchanges.paper.fills import FeeRates
from protocol import Candle

__all__ = ["Difference", "Outcome", "backtest_outcome", "bus_outcome", "differences", "difference_table"]

# (strategy id, the signal's candle open time, side, the protective exit or "" for the strategy's own)
Key = tuple[str, datetime, str, str]
# A fill: (quantity, average price)
FillFacts = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class Outcome:
    """One side of the comparison."""

    decisions: dict[Key, str] = field(default_factory=dict)
    fills: dict[Key, FillFacts] = field(default_factory=dict)

    @property
    def signals(self) -> set[Key]:
        return set(self.decisions)


@dataclass(frozen=True, slots=True)
class Difference:
    key: Key
    what: str  # signal, decision or fill
    backtest: str
    bus: str


def backtest_outcome(
    candles: Sequence[Candle],
    instances: Sequence[StrategyInstanceConfig],
    *,
    rules: MarketRules,
    risk: RiskPath,
    cash: Decimal,
    fees: FeeRates,
    slippage_bps: Decimal,
    indicator_params: IndicatorParams,
) -> tuple[Outcome, list[BacktestResult]]:
    """The backtester's signals, decisions and fills over ``candles`` (the replayed slice)."""
    first = candles[0]
    bars = Bars(first.exchange, first.symbol, first.timeframe, tuple(candles), "parity slice")
    window = Window(bars, 0)
    config = BacktestConfig(rules=rules, initial_cash=cash, fees=fees, slippage_bps=slippage_bps, risk=risk,
                            fill_at=FillAt.CLOSE, exchange=first.exchange)
    from agents.backtest.engine import build_history

    strategies = [(i.strategy_id, i.build()) for i in instances]
    only = sorted({c for _, s in strategies for c in s.indicator_columns})
    history = build_history(window, indicator_params, live_window=True, only=only)
    results = run_shared(window, strategies, indicator_params, config, history=history, fast=False,
                         exits={i.strategy_id: i.exits for i in instances})
    decisions: dict[Key, str] = {}
    fills: dict[Key, FillFacts] = {}
    for result in results:
        sid = result.strategy_id or ""
        refused = {r.signal_bar: r.code for r in result.rejections if r.exit_reason is None}
        filled = {f.signal_bar: f for f in result.fills if f.exit_reason == "SIGNAL"}
        # Protective exits: a SELL decided at the candle that triggered it.
        for rejection in result.rejections:
            if rejection.exit_reason is not None:
                key = (sid, candles[rejection.signal_bar].open_time, "SELL", rejection.exit_reason)
                decisions[key] = "APPROVED" if rejection.code == "EXCHANGE_REJECTED" else rejection.code
        for fill in result.fills:
            if fill.exit_reason != "SIGNAL":
                key = (sid, candles[fill.bar].open_time, "SELL", fill.exit_reason)
                decisions[key] = "APPROVED"
                fills[key] = (fill.quote.quantity, fill.quote.price)
        for bar, decision in result.signals:
            key = (sid, candles[bar].open_time, decision.side.value, "")
            if decision.side.value == "HOLD":
                decisions[key] = "IGNORED"
            elif bar in filled:
                decisions[key] = "APPROVED"
                quote = filled[bar].quote
                fills[key] = (quote.quantity, quote.price)
            else:
                code = refused.get(bar, "NONE")
                # The exchange refusing an approved order is still an approval of the risk manager.
                decisions[key] = "APPROVED" if code == "EXCHANGE_REJECTED" else code
    return Outcome(decisions, fills), results


_DECISIONS_SQL = """
SELECT strategy_id, side, decision, reason, inputs->'signal'->>'candle_time' AS candle_time,
       inputs->'signal'->>'exit_reason' AS exit_reason, output->>'client_order_id' AS client_order_id
FROM risk_decisions
"""
_ORDERS_SQL = "SELECT client_order_id, filled, average_price FROM orders WHERE filled > 0"


async def bus_outcome(database_url: str) -> Outcome:
    """The bus run's signals, decisions and fills, read from its ledger (risk audit, orders)."""
    import asyncpg

    from agents.run.plan import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=30)
    try:
        decided = await connection.fetch(_DECISIONS_SQL, timeout=60)
        orders = {r["client_order_id"]: r for r in await connection.fetch(_ORDERS_SQL, timeout=60)}
    finally:
        await connection.close()
    decisions: dict[Key, str] = {}
    fills: dict[Key, FillFacts] = {}
    for row in decided:
        key = (row["strategy_id"], _moment(row["candle_time"]), row["side"], row["exit_reason"] or "")
        decisions[key] = row["reason"] if row["decision"] == "REJECTED" else row["decision"]
        order = orders.get(row["client_order_id"])
        if order is not None:
            fills[key] = (Decimal(order["filled"]), Decimal(order["average_price"]))
    return Outcome(decisions, fills)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _fill_text(fill: FillFacts | None) -> str:
    return "-" if fill is None else f"{fill[0].normalize():f} @ {fill[1].normalize():f}"


def differences(backtest: Outcome, bus: Outcome) -> list[Difference]:
    """Every key where the two sides disagree on the signal, the decision or the fill."""
    found: list[Difference] = []
    for key in sorted(backtest.signals | bus.signals):
        ours, theirs = backtest.decisions.get(key), bus.decisions.get(key)
        if ours is None or theirs is None:
            found.append(Difference(key, "signal", "published" if ours else "-", "published" if theirs else "-"))
            continue
        if ours != theirs:
            found.append(Difference(key, "decision", ours, theirs))
        mine, other = backtest.fills.get(key), bus.fills.get(key)
        if mine != other:
            found.append(Difference(key, "fill", _fill_text(mine), _fill_text(other)))
    return found


def summary(outcome: Outcome) -> dict[str, Any]:
    """Counts of one side: signals, decisions by kind, fills."""
    kinds: dict[str, int] = {}
    for decision in outcome.decisions.values():
        kinds[decision] = kinds.get(decision, 0) + 1
    return {"signals": len(outcome.decisions), "decisions": dict(sorted(kinds.items())), "fills": len(outcome.fills)}


def difference_table(found: Iterable[Difference], *, limit: int = 50) -> Table:
    """The differences as a table (the first ``limit``)."""
    table = Table(title="backtest vs bus: differences")
    for column in ("strategy", "candle (UTC)", "side", "what", "backtest", "bus"):
        table.add_column(column)
    for diff in list(found)[:limit]:
        sid, moment, side, exit_reason = diff.key
        side = f"{side} ({exit_reason})" if exit_reason else side
        table.add_row(sid, f"{moment:%Y-%m-%d %H:%M}", side, diff.what, diff.backtest, diff.bus)
    return table


def summary_table(backtest: Outcome, bus: Outcome) -> Table:
    """Both sides' counts side by side."""
    ours, theirs = summary(backtest), summary(bus)
    table = Table(title="backtest vs bus")
    for column in ("", "backtest", "bus"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("signals", str(ours["signals"]), str(theirs["signals"]))
    for kind in sorted(set(ours["decisions"]) | set(theirs["decisions"])):
        table.add_row(f"  {kind}", str(ours["decisions"].get(kind, 0)), str(theirs["decisions"].get(kind, 0)))
    table.add_row("fills", str(ours["fills"]), str(theirs["fills"]))
    return table


def backtest_from_settings(
    candles: Sequence[Candle], env: dict[str, str], *, strategy_config: str | None = None
) -> tuple[Outcome, list[BacktestResult]]:
    """``backtest_outcome`` configured as the agents of a run with ``env`` on top of the
    process environment are: risk limits and sizing (RiskSettings), the paper account
    (PAPER_BALANCES' quote balance), fees and slippage (ExecutionSettings), indicator
    parameters (TechnicalAnalysisSettings), the enabled strategy instances of the config
    (STRATEGY_CONFIG, STRATEGY__* overrides) for the slice's symbol and timeframe."""
    import os

    from agents.execution.settings import ExecutionSettings
    from agents.risk_manager.settings import RiskSettings
    from agents.strategy.config import load_strategy_config
    from agents.technical_analysis.settings import TechnicalAnalysisSettings
    from infra.exchanges import load_market_snapshot, market_rules
    from protocol import split_symbol

    first = candles[0]
    risk_settings = RiskSettings(**env)  # type: ignore[arg-type]  # aliases, as from the environment
    execution = ExecutionSettings(**env)  # type: ignore[arg-type]
    analysis = TechnicalAnalysisSettings(**env)  # type: ignore[arg-type]
    quote = split_symbol(first.symbol)[1]
    balances = risk_settings.initial_balances
    if set(balances) - {quote}:
        raise ValueError(f"parity needs a paper account in {quote} only; PAPER_BALANCES={risk_settings.paper_balances}")
    environ = {**os.environ, **env}
    config_path = strategy_config or environ.get("STRATEGY_CONFIG")
    instances = [
        i for i in load_strategy_config(config_path, environ=environ, default_symbols=risk_settings.symbols,
                                        default_timeframe=risk_settings.timeframe, build=False)
        if i.applies_to(first.symbol, first.timeframe)
    ]
    if not instances:
        raise ValueError(f"no enabled strategy instance trades {first.symbol} {first.timeframe}")
    return backtest_outcome(
        candles, instances, rules=market_rules(load_market_snapshot(first.exchange), first.symbol),
        risk=RiskPath.from_settings(risk_settings), cash=balances.get(quote, Decimal(0)),
        fees=execution.paper_fees, slippage_bps=execution.paper_slippage_bps,
        indicator_params=analysis.indicator_params(),
    )
