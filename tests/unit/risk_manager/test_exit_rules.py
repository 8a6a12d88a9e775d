"""The protective exit rules (agents/risk_manager/exits.py): crafted candles for each exit kind,
gaps, precedence inside a candle, and a property: no exit price outside the candle's range."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.risk_manager.exits import Bar, ExitState, ExitTrigger, advance, check_exit, enter, first_exit
from protocol.exits import ExitReason, ExitSettings

D = Decimal
ENTRY = enter(D(100))


def bar(o: str, h: str, low: str, c: str) -> Bar:
    return Bar(D(o), D(h), D(low), D(c))


def run(exits: ExitSettings, bars: list[Bar], state: ExitState = ENTRY) -> tuple[int, ExitTrigger] | None:
    """The first candle (index) that exits, as the backtester and the risk manager walk them."""
    for index, candle in enumerate(bars):
        hit = check_exit(exits, state, candle)
        if hit is not None:
            return index, hit
        state = advance(state, candle)
    return None


def test_stop_loss_fills_at_the_stop_when_the_low_reaches_it() -> None:
    exits = ExitSettings(stop_loss=D("0.03"))
    assert run(exits, [bar("100", "101", "98", "99"), bar("99", "99.5", "96.5", "98")]) == (
        1, ExitTrigger(ExitReason.STOP_LOSS, D("97.00"), D("97.00")))


def test_a_low_just_above_the_stop_does_not_exit() -> None:
    assert run(ExitSettings(stop_loss=D("0.03")), [bar("99", "99", "97.01", "98")]) is None


def test_gap_through_the_stop_fills_at_the_open() -> None:
    exits = ExitSettings(stop_loss=D("0.03"))
    assert run(exits, [bar("95", "96", "90", "93")]) == (0, ExitTrigger(ExitReason.STOP_LOSS, D(95), D("97.00")))


def test_take_profit_fills_at_the_target_and_a_gap_up_at_the_open() -> None:
    exits = ExitSettings(take_profit=D("0.06"))
    assert run(exits, [bar("101", "105", "100", "104"), bar("104", "107", "103", "106")]) == (
        1, ExitTrigger(ExitReason.TAKE_PROFIT, D("106.00"), D("106.00")))
    assert run(exits, [bar("108", "110", "107", "109")]) == (0, ExitTrigger(ExitReason.TAKE_PROFIT, D(108), D("106.00")))


def test_stop_before_take_profit_inside_one_candle() -> None:
    exits = ExitSettings(stop_loss=D("0.03"), take_profit=D("0.06"))
    assert run(exits, [bar("100", "110", "90", "100")]) == (0, ExitTrigger(ExitReason.STOP_LOSS, D("97.00"), D("97.00")))


def test_trailing_stop_follows_earlier_highs_only() -> None:
    exits = ExitSettings(trailing_stop=D("0.02"))
    bars = [
        bar("100", "110", "100", "109"),  # high-water becomes 110 after this candle: level 107.8
        bar("109", "112", "107.9", "111"),  # its own high (112) is not used inside it
        bar("111", "111", "109", "110"),  # level now 112 x 0.98 = 109.76: low 109 reaches it
    ]
    assert run(exits, bars) == (2, ExitTrigger(ExitReason.TRAILING_STOP, D("109.76"), D("109.76")))


def test_the_higher_of_stop_loss_and_trailing_stop_fires_and_ties_are_stop_loss() -> None:
    tie = ExitSettings(stop_loss=D("0.02"), trailing_stop=D("0.02"))
    assert run(tie, [bar("100", "100", "97", "98")]) == (0, ExitTrigger(ExitReason.STOP_LOSS, D("98.00"), D("98.00")))
    both = ExitSettings(stop_loss=D("0.05"), trailing_stop=D("0.02"))
    assert run(both, [bar("100", "100", "97", "98")]) == (0, ExitTrigger(ExitReason.TRAILING_STOP, D("98.00"), D("98.00")))


def test_time_stop_exits_at_the_close_of_the_nth_candle() -> None:
    exits = ExitSettings(time_stop=3)
    flat = [bar("100", "101", "99", "100"), bar("100", "101", "99", "100.5"), bar("100", "101", "99", "100.25")]
    assert run(exits, flat) == (2, ExitTrigger(ExitReason.TIME_STOP, D("100.25"), None))
    assert run(exits, flat[:2]) is None


def test_atr_stop_uses_the_entry_atr() -> None:
    exits = ExitSettings(stop_loss_atr=D(2))
    assert run(exits, [bar("100", "100", "95", "96")], enter(D(100), D("2"))) == (
        0, ExitTrigger(ExitReason.STOP_LOSS, D(96), D(96)))
    assert run(exits, [bar("100", "100", "95", "96")], enter(D(100), None)) is None  # no ATR: no stop


def test_no_exits_configured_never_exits() -> None:
    assert run(ExitSettings(), [bar("100", "200", "1", "50")]) is None


prices = st.decimals(min_value="0.01", max_value="100000", places=2, allow_nan=False, allow_infinity=False)
fractions = st.one_of(st.none(), st.decimals(min_value="0.001", max_value="0.5", places=3))


@st.composite
def candles(draw: st.DrawFn) -> Bar:
    a, b, c, d = (draw(prices) for _ in range(4))
    low, high = min(a, b, c, d), max(a, b, c, d)
    return Bar(open=b, high=high, low=low, close=c)


@settings(max_examples=300, deadline=None)
@given(
    entry=prices,
    stop=fractions,
    target=fractions,
    trail=fractions,
    time_stop=st.one_of(st.none(), st.integers(1, 5)),
    atr=st.one_of(st.none(), prices),
    atr_multiple=st.one_of(st.none(), st.decimals(min_value="0.5", max_value="5", places=1)),
    path=st.lists(candles(), min_size=1, max_size=8),
)
def test_no_exit_fills_at_a_price_the_candle_never_traded(
    entry: Decimal, stop: Decimal | None, target: Decimal | None, trail: Decimal | None,
    time_stop: int | None, atr: Decimal | None, atr_multiple: Decimal | None, path: list[Bar],
) -> None:
    exits = ExitSettings(stop_loss=stop, stop_loss_atr=None if stop is not None else atr_multiple,
                         take_profit=target, trailing_stop=trail, time_stop=time_stop)
    found = run(exits, path, enter(entry, atr))
    if found is not None:
        index, hit = found
        assert path[index].low <= hit.price <= path[index].high


@pytest.mark.parametrize("held", [0, 1, 5])
def test_advance_counts_candles_and_keeps_the_highest_high(held: int) -> None:
    state = ExitState(D(100), D(105), held)
    assert advance(state, bar("100", "104", "99", "100")) == ExitState(D(100), D(105), held + 1)
    assert advance(state, bar("100", "107", "99", "100")).high_water == D(107)


def test_first_exit_walks_like_check_and_advance() -> None:
    exits = ExitSettings(stop_loss=D("0.03"), time_stop=5)
    bars = [bar("100", "104", "99", "103"), bar("103", "103", "96", "97"), bar("97", "98", "90", "91")]
    index, hit, before = first_exit(exits, ENTRY, bars)
    assert (index, hit) == run(exits, bars) and before == advance(ENTRY, bars[0])
    assert first_exit(exits, ENTRY, bars[:1]) == (None, None, advance(ENTRY, bars[0]))
