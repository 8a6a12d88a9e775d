"""Protective exits in the backtester: crafted candles for each exit kind, a gap through the
stop, the exit reason on the trades list, and a strategy SELL that comes first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from agents.backtest.data import Bars, select_window
from agents.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from agents.backtest.report import exit_counts, result_document
from agents.strategy.api import Decision, Strategy
from agents.strategy.history import IndicatorHistory
from agents.technical_analysis.indicators import IndicatorParams
from infra.exchanges import MarketRules
from infra.exchanges.paper.fills import market_fill_price
from protocol import Candle, Side, SignalSide
from protocol.exits import ExitSettings, parse_exits
from tests.unit.backtest.conftest import T0

D = Decimal


class Scripted(Strategy):
    """BUY at the rows in ``buys``, SELL at the rows in ``sells``, HOLD elsewhere."""

    kind = "scripted"
    COLUMNS = frozenset()
    buys: frozenset[int] = frozenset({0})
    sells: frozenset[int] = frozenset()

    def decide(self, history: IndicatorHistory, i: int) -> Decision:
        if i in self.buys:
            return Decision(SignalSide.BUY, 1.0, "scripted buy")
        if i in self.sells:
            return Decision(SignalSide.SELL, 1.0, "scripted sell")
        return Decision(SignalSide.HOLD, 1.0, "scripted hold")


def candles(rows: Sequence[tuple[str, str, str, str]]) -> Bars:
    made = tuple(
        Candle.closed(source="test", exchange="binance", symbol="BTC/USDT", timeframe="1h", open_time=T0 + i * timedelta(hours=1),
                      open=D(o), high=D(h), low=D(low), close=D(c), volume=D(1))
        for i, (o, h, low, c) in enumerate(rows)
    )
    return Bars("binance", "BTC/USDT", "1h", made, "test")


def run(rows: Sequence[tuple[str, str, str, str]], rules: MarketRules, exits: str, strategy: Strategy | None = None,
        slippage: str = "0") -> BacktestResult:
    window = select_window(candles(rows), start=None, end=None, warmup=0)
    config = BacktestConfig(rules=rules, slippage_bps=D(slippage), exits=parse_exits(exits))
    return run_backtest(window, strategy or Scripted(), IndicatorParams(), config, fast=False)


# Row 0: the BUY signal at its close; row 1: filled at its open (100) and the first held candle.
START = [("100", "100", "100", "100")]


def test_stop_loss_fills_at_the_stop_inside_the_candle(rules: MarketRules) -> None:
    result = run([*START, ("100", "101", "99", "100"), ("100", "100", "96", "97"), ("97", "99", "90", "91")], rules,
                 "stop_loss=0.03,take_profit=0.5")
    [trade] = result.trades
    assert trade.exit is not None and trade.exit_reason == "STOP_LOSS"
    assert (trade.entry.bar, trade.exit.bar, trade.exit.signal_bar) == (1, 2, 2)
    assert trade.exit.quote.price == D("97.00")  # entry 100 x (1 - 0.03), no slippage
    assert result.final_position == 0


def test_gap_through_the_stop_fills_at_the_open_with_slippage(rules: MarketRules) -> None:
    result = run([*START, ("100", "101", "99", "100"), ("94", "95", "92", "93")], rules, "stop_loss=0.03", slippage="10")
    [trade] = result.trades
    assert trade.exit is not None and trade.exit_reason == "STOP_LOSS" and trade.exit.bar == 2
    # The open (94), moved 10 bps against the seller by the paper exchange's own rule.
    assert trade.exit.quote.price == market_fill_price(Side.SELL, D(94), D(10), rules.tick_size) < D(94)


def test_take_profit_trailing_and_time_stops(rules: MarketRules) -> None:
    tp = run([*START, ("100", "103", "99", "102"), ("102", "107", "101", "106")], rules, "take_profit=0.05")
    assert [(t.exit_reason, t.exit.bar, t.exit.quote.price) for t in tp.trades if t.exit] == [("TAKE_PROFIT", 2, D("105.00"))]
    trail = run([*START, ("100", "110", "100", "109"), ("109", "109", "107", "108")], rules, "trailing_stop=0.02")
    assert [(t.exit_reason, t.exit.bar, t.exit.quote.price) for t in trail.trades if t.exit] == [("TRAILING_STOP", 2, D("107.80"))]
    timed = run([*START, ("100", "101", "99", "100"), ("100", "101", "99", "100.5"), ("100", "101", "99", "99")], rules,
                "time_stop=2")
    assert [(t.exit_reason, t.exit.bar, t.exit.quote.price) for t in timed.trades if t.exit] == [("TIME_STOP", 2, D("100.5"))]


def test_a_strategy_sell_fills_before_the_next_candle_is_checked(rules: MarketRules) -> None:
    class SellsAtTwo(Scripted):
        sells = frozenset({2})

    # The SELL at the close of row 2 fills at the open of row 3 (99); row 3's low would stop out.
    result = run([*START, ("100", "101", "99", "100"), ("100", "101", "99", "99"), ("99", "99", "80", "85")], rules,
                 "stop_loss=0.03", SellsAtTwo())
    [trade] = result.trades
    assert trade.exit is not None and trade.exit_reason == "SIGNAL" and trade.exit.quote.price == D(99)


def test_the_trades_list_says_which_exit_closed_each_trade(rules: MarketRules) -> None:
    class BuysTwice(Scripted):
        buys = frozenset({0, 4})
        sells = frozenset({3})

    rows = [*START, ("100", "101", "99", "100"), ("100", "100", "96", "97"), ("97", "97", "97", "97"),
            ("97", "97", "97", "97"), ("97", "98", "96", "97"), ("97", "98", "96", "97")]
    result = run(rows, rules, "stop_loss=0.03,time_stop=2", BuysTwice())
    assert [t.exit_reason for t in result.trades] == ["STOP_LOSS", "TIME_STOP"]
    assert exit_counts(result) == "1 x STOP_LOSS, 1 x TIME_STOP"
    document = result_document(result, None, created_at=T0)
    assert [t["exit_reason"] for t in document["trades"]] == ["STOP_LOSS", "TIME_STOP"]
    assert document["trades"][0]["exit"]["exit_reason"] == "STOP_LOSS"
    assert document["config"]["exits"] == {"stop_loss": "0.03", "time_stop": 2}


def test_no_exits_leaves_the_run_unchanged(rules: MarketRules) -> None:
    rows = [*START, ("100", "101", "50", "100"), ("100", "300", "99", "100")]
    plain = run(rows, rules, "")
    assert plain.trades[0].exit is None and plain.config.exits == ExitSettings()
