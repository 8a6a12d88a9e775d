"""Paper fill rules: exact Decimal arithmetic, limit crossing, market-rule rejections."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.exchanges.markets import MarketRules
from infra.exchanges.paper.fills import (
    FeeRates,
    FillRejected,
    Liquidity,
    balance_changes,
    check_limit_price,
    check_quantity,
    fee_for,
    funds_needed,
    limit_crossed,
    limit_fill,
    market_fill,
    market_fill_price,
    marketable_limit_fill,
    round_to_tick,
)
from infra.exchanges.paper.seed import parse_balances
from protocol import Side

BTC = MarketRules("BTC/USDT", tick_size=D("0.01"), lot_step=D("0.00001"), min_qty=D("0.00001"), min_notional=D("5"))


def test_market_buy_pays_slippage_rounded_up_to_the_tick_and_the_taker_fee() -> None:
    # 47000.37 * 1.0005 = 47023.870185 -> up to the tick: 47023.88
    fill = market_fill(Side.BUY, D("0.01"), D("47000.37"), BTC, slippage_bps=D(5), quote_asset="USDT")
    assert fill.price == D("47023.88")
    assert fill.notional == D("470.2388")
    assert fill.fee == D("0.4702388")  # 0.1 % taker, exact, in quote
    assert (fill.fee_currency, fill.liquidity) == ("USDT", Liquidity.TAKER)
    assert balance_changes(fill, "BTC") == {"BTC": D("0.01"), "USDT": D("-470.7090388")}


def test_market_sell_receives_less_rounded_down_to_the_tick() -> None:
    # 47000.37 * 0.9995 = 46976.869815 -> down to the tick: 46976.86
    fill = market_fill(Side.SELL, D("0.02"), D("47000.37"), BTC, slippage_bps=D(5),
                       fees=FeeRates(taker=D("0.00075"), maker=D(0)), quote_asset="USDT")
    assert fill.price == D("46976.86")
    assert fill.notional == D("939.5372")
    assert fill.fee == D("0.7046529")
    assert balance_changes(fill, "BTC") == {"BTC": D("-0.02"), "USDT": D("938.8325471")}


def test_zero_slippage_on_the_tick_is_the_reference_price() -> None:
    assert market_fill_price(Side.BUY, D("100.10"), D(0), D("0.01")) == D("100.10")
    assert market_fill_price(Side.SELL, D("100.10"), D(0), D("0.01")) == D("100.10")
    assert round_to_tick(D("100.101"), D("0.01"), Side.BUY) == D("100.11")
    assert round_to_tick(D("100.109"), D("0.01"), Side.SELL) == D("100.10")


@given(
    reference=st.decimals(min_value=D("0.01"), max_value=D("1000000"), places=4),
    bps=st.decimals(min_value=D(0), max_value=D(100), places=2),
)
def test_slippage_is_never_in_the_traders_favour(reference: D, bps: D) -> None:
    buy = market_fill_price(Side.BUY, reference, bps, D("0.01"))
    sell = market_fill_price(Side.SELL, reference, bps, D("0.01"))
    assert buy >= reference * (1 + bps / 10000) and buy % D("0.01") == 0
    assert sell <= reference * (1 - bps / 10000) and sell % D("0.01") == 0
    # Deterministic: the same inputs give the same price.
    assert market_fill_price(Side.BUY, reference, bps, D("0.01")) == buy


@pytest.mark.parametrize(
    ("quantity", "price", "reason"),
    [
        (D("0.000015"), D("47000"), "quantity 0.000015 is not a multiple of the lot step 0.00001 of BTC/USDT"),
        (D("0.00010"), D("47000"), "notional 4.70000 (0.00010 x 47000) is below the minimum notional 5 of BTC/USDT"),
        (D("0"), D("47000"), "quantity 0 must be > 0"),
    ],
)
def test_orders_below_the_market_rules_are_rejected_with_the_reason(quantity: D, price: D, reason: str) -> None:
    assert check_quantity(quantity, price, BTC) == reason
    with pytest.raises(FillRejected) as caught:
        market_fill(Side.BUY, quantity, price, BTC, slippage_bps=D(0), quote_asset="USDT")
    assert caught.value.reason == reason


def test_min_quantity_and_limit_tick_are_enforced() -> None:
    rules = MarketRules("ETH/USDT", D("0.01"), D("0.0001"), D("0.001"), D("5"))
    assert check_quantity(D("0.0009"), D("9000"), rules) == "quantity 0.0009 is below the minimum quantity 0.001 of ETH/USDT"
    assert check_quantity(D("0.001"), D("5000"), rules) is None
    assert check_limit_price(D("3000.005"), rules) == "limit price 3000.005 is not a multiple of the tick size 0.01 of ETH/USDT"
    assert check_limit_price(D("3000.01"), rules) is None


def test_a_resting_limit_fills_only_when_a_candle_crosses_it() -> None:
    assert not limit_crossed(Side.BUY, D("46000"), low=D("46000.01"), high=D("47000"))
    assert limit_crossed(Side.BUY, D("46000"), low=D("46000"), high=D("47000"))
    assert not limit_crossed(Side.SELL, D("48000"), low=D("47000"), high=D("47999.99"))
    assert limit_crossed(Side.SELL, D("48000"), low=D("47000"), high=D("48000"))
    fill = limit_fill(Side.BUY, D("0.001"), D("46000"), fees=FeeRates(maker=D("0.0002")), quote_asset="USDT")
    assert (fill.price, fill.notional, fill.fee, fill.liquidity) == (D("46000"), D("46.000"), D("0.0092000"), Liquidity.MAKER)


def test_marketable_limit_fills_at_once_but_never_beyond_its_limit() -> None:
    # BUY limit above the market: fills at the slipped market price (taker).
    fill = marketable_limit_fill(Side.BUY, D("0.001"), D("47100"), D("47000"), BTC, slippage_bps=D(5), quote_asset="USDT")
    assert fill is not None and fill.price == D("47023.50") and fill.liquidity is Liquidity.TAKER
    # Slippage would cross the limit: capped at the limit.
    capped = marketable_limit_fill(Side.BUY, D("0.001"), D("47010"), D("47000"), BTC, slippage_bps=D(5), quote_asset="USDT")
    assert capped is not None and capped.price == D("47010")
    # Below the market a BUY limit rests.
    assert marketable_limit_fill(Side.BUY, D("0.001"), D("46999.99"), D("47000"), BTC, slippage_bps=D(5), quote_asset="USDT") is None
    assert marketable_limit_fill(Side.SELL, D("0.001"), D("47000.01"), D("47000"), BTC, slippage_bps=D(5), quote_asset="USDT") is None


def test_funds_needed_and_fees_are_exact() -> None:
    assert funds_needed(Side.BUY, D("0.002"), D("46000"), D("0.001")) == D("92.092000")
    assert funds_needed(Side.SELL, D("0.002"), D("46000"), D("0.001")) == D("0.002")
    assert fee_for(D("0.1") + D("0.2"), D("0.001")) == D("0.0003")


def test_paper_balances_setting() -> None:
    assert parse_balances("usdt:10000, BTC:0.5") == {"USDT": D("10000"), "BTC": D("0.5")}
    assert parse_balances("") == {}
    for bad in ("USDT", "USDT:abc", "USDT:-1", "USDT:1,USDT:2", "USDT:NaN"):
        with pytest.raises(ValueError, match="PAPER_BALANCES"):
            parse_balances(bad)
