"""The account check the ledger asks under the account lock (decision 0029): the rules' own
limit arithmetic on the book as it stands, so an unchanged book answers as the snapshot did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from agents.risk_manager.account_check import AccountLimits, account_check
from agents.risk_manager.rules import Approved, Outcome, RiskLimits, RiskSnapshot, decide
from agents.risk_manager.sizing import SizedOrder, SizingConfig
from agents.risk_manager.snapshot import risk_snapshot, value_account
from infra.db.ledger import AccountBook, BalanceView, PositionView
from infra.db.ledger.types import HeldPosition, OpenBuy
from infra.exchanges import load_market_snapshot, market_rules
from protocol import RejectionReason, Side, Signal

NOW = datetime(2021, 10, 1, 12, 15, tzinfo=UTC)
MARKS = {"BTC": D("43000"), "ETH": D("3000")}
BALANCES = {"USDT": BalanceView("USDT", D("10000"), D("10000"), D("0")), "ETH": BalanceView("ETH", D("1"), D("1"), D("0"))}
ETH_HELD = PositionView("other", "paper", "ETH/USDT", D("1"), D("2900"), D("0"), D("0"))


def buy(side: str = "BUY") -> Signal:
    return Signal(
        source="strategy", strategy_id="s1", strategy="sma_cross", exchange="paper", symbol="BTC/USDT",
        timeframe="15m", side=side, confidence=0.9, reason="test", indicators={"sma_fast": D("1")},
        candle_time=NOW - timedelta(minutes=15), price=MARKS["BTC"],
    )


def snapshot() -> RiskSnapshot:
    """As the agent builds it: the account holds ETH (another strategy's), nothing in flight."""
    value = value_account(BALANCES, [ETH_HELD], [], MARKS, strategy_id="s1", exchange="paper", symbol="BTC/USDT")
    return risk_snapshot(value, BALANCES, symbol="BTC/USDT", now=NOW, reference_price=MARKS["BTC"], price_time=NOW,
                         peak_equity=None, order_times=())


def decided(limits: RiskLimits) -> tuple[Outcome, AccountLimits | None]:
    sig, snap = buy(), snapshot()
    outcome, sized = decide(sig, snap, limits, SizingConfig(fraction=D("0.1")),
                            market_rules(load_market_snapshot("binance"), "BTC/USDT"))
    assert sized is not None
    return outcome, account_check(sig, snap, limits, sized, MARKS)


AS_READ = AccountBook((HeldPosition("other", "paper", "ETH/USDT", D("1"), D("2900")),), ())
ANOTHER_BUY = OpenBuy("other", "paper", "SOL/USDT", Side.BUY, D("1000"))


def test_the_book_the_decision_read_passes_at_the_edge_of_both_limits() -> None:
    # Equity 13,000; the ETH position is 3,000 and this BUY ~1,000: 0.308 of equity, 2 positions.
    limits = RiskLimits(max_open_positions=2, max_total_exposure=D("0.31"))
    outcome, check = decided(limits)
    assert isinstance(outcome, Approved) and check is not None
    assert check(AS_READ) is None


def test_a_buy_approved_since_the_snapshot_is_counted_as_a_position() -> None:
    outcome, check = decided(RiskLimits(max_open_positions=2))
    assert isinstance(outcome, Approved) and check is not None
    refusal = check(AccountBook(AS_READ.positions, (ANOTHER_BUY,)))
    assert refusal is not None and refusal.reason is RejectionReason.MAX_OPEN_POSITIONS
    assert refusal.inputs["open_positions"] == 2 and refusal.inputs["decided_on"]["open_positions"] == 1


def test_a_buy_approved_since_the_snapshot_is_counted_as_exposure() -> None:
    outcome, check = decided(RiskLimits(max_total_exposure=D("0.31")))
    assert isinstance(outcome, Approved) and check is not None
    refusal = check(AccountBook(AS_READ.positions, (ANOTHER_BUY,)))
    assert refusal is not None and refusal.reason is RejectionReason.TOTAL_EXPOSURE_LIMIT
    assert refusal.inputs["total_exposure"] == D("4000")


def test_a_position_without_a_mark_is_valued_at_its_entry_price() -> None:
    outcome, check = decided(RiskLimits(max_total_exposure=D("0.31"), max_open_positions=3))
    assert isinstance(outcome, Approved) and check is not None
    filled = HeldPosition("other", "paper", "SOL/USDT", D("10"), D("150"))
    refusal = check(AccountBook((*AS_READ.positions, filled), ()))
    assert refusal is not None and refusal.reason is RejectionReason.TOTAL_EXPOSURE_LIMIT
    assert refusal.inputs["valued_at_cost"] == ["SOL"] and refusal.inputs["total_exposure"] == D("4500")


def test_a_sell_has_no_account_check() -> None:
    # A SELL adds no risk: its approval never waits for the account lock.
    sold = SizedOrder(Side.SELL, D("0.01"), MARKS["BTC"], D("430"), "BTC", D("0.01"))
    assert account_check(buy("SELL"), snapshot(), RiskLimits(), sold, MARKS) is None
