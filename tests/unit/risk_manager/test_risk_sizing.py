"""Order sizing: lot rounding, market minimums from the saved ccxt snapshot, all-in with fees, ATR."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from agents.risk_manager.sizing import (
    SizedOrder,
    SizingConfig,
    SizingMode,
    SizingRejected,
    ceil_to_step,
    floor_to_step,
    size_order,
)
from infra.exchanges import MarketRules, load_market_snapshot, market_rules
from protocol import RejectionReason, Side

BTC = market_rules(load_market_snapshot("binance"), "BTC/USDT")
PRICE = D("47123.45")


def test_rules_come_from_the_snapshot_not_from_constants() -> None:
    # The figures the assertions below rely on; if the snapshot changes, this says why.
    assert (BTC.lot_step, BTC.min_qty, BTC.min_notional) == (D("0.00001"), D("0.00001"), D("5.0"))


def test_fraction_buy_is_lot_rounded_down_and_reserves_fee_and_slippage() -> None:
    config = SizingConfig(fraction=D("0.1"), fee_buffer=D("0.001"), slippage_buffer=D("0.0005"))
    result = size_order(Side.BUY, PRICE, BTC, config, available_quote=D("10000"))
    assert isinstance(result, SizedOrder)
    # 1000 / (47123.45 x 1.0015) = 0.0211890... -> 0.02118 (down to the 0.00001 step)
    assert result.quantity == D("0.02118")
    assert result.notional == D("0.02118") * PRICE
    assert result.reserved_asset == "USDT"
    assert result.reserved_amount == D("0.02118") * PRICE * D("1.0015")
    assert result.reserved_amount <= D("1000")
    assert result.quantity % BTC.lot_step == 0


def test_all_in_is_the_largest_lot_quantity_whose_reservation_fits() -> None:
    config = SizingConfig(fraction=D(1), fee_buffer=D("0.001"), slippage_buffer=D(0))
    available = D("10000")
    result = size_order(Side.BUY, PRICE, BTC, config, available_quote=available)
    assert isinstance(result, SizedOrder)
    assert result.reserved_amount <= available
    one_more = result.quantity + BTC.lot_step
    assert one_more * PRICE * D("1.001") > available  # no larger lot fits
    assert result.quantity == D("0.21199")


@pytest.mark.parametrize("available", ["5.01", "137.77", "10000", "999999.99", "12345.6789"])
@pytest.mark.parametrize("price", ["0.1", "3.33", "47123.45", "65000.01"])
def test_all_in_never_over_reserves(available: str, price: str) -> None:
    rules = MarketRules("BTC/USDT", D("0.01"), D("0.00001"), D("0"), D("0"))
    config = SizingConfig(fraction=D(1), fee_buffer=D("0.00075"), slippage_buffer=D("0.0003"))
    result = size_order(Side.BUY, D(price), rules, config, available_quote=D(available))
    assert isinstance(result, SizedOrder)
    assert result.reserved_amount <= D(available)
    assert (result.quantity + rules.lot_step) * D(price) * config.reserve_multiplier > D(available)


def test_trade_cap_limits_notional() -> None:
    config = SizingConfig(fraction=D(1), max_trade_notional=D("500"))
    result = size_order(Side.BUY, PRICE, BTC, config, available_quote=D("10000"))
    assert isinstance(result, SizedOrder)
    assert result.notional <= D("500")
    assert result.quantity == floor_to_step(D("500") / PRICE, BTC.lot_step)


def test_below_min_notional_and_min_quantity() -> None:
    # 1% of 600 USDT: 6 / (47123.45 x 1.0015) = 0.000127 -> 0.00012, notional 5.65 >= 5: sized.
    small = SizingConfig(fraction=D("0.01"))
    assert isinstance(size_order(Side.BUY, PRICE, BTC, small, available_quote=D("600")), SizedOrder)
    # 0.5% of 1000 = 5 USDT, minus buffers -> notional 4.71 < 5 -> BELOW_MIN_NOTIONAL.
    tiny = SizingConfig(fraction=D("0.005"))
    result = size_order(Side.BUY, PRICE, BTC, tiny, available_quote=D("1000"))
    assert isinstance(result, SizingRejected) and result.reason is RejectionReason.BELOW_MIN_NOTIONAL
    # A market with a quantity floor above what the fraction buys -> BELOW_MIN_QUANTITY.
    coarse = MarketRules("BTC/USDT", D("0.01"), D("0.001"), D("0.01"), D("0"))
    result = size_order(Side.BUY, PRICE, coarse, SizingConfig(fraction=D("0.01")), available_quote=D("10000"))
    assert isinstance(result, SizingRejected) and result.reason is RejectionReason.BELOW_MIN_QUANTITY


def test_insufficient_balance_when_even_the_smallest_order_does_not_fit() -> None:
    for available in ("0", "4.99", "5.00"):  # 5 USDT minimum plus buffers does not fit in 5.00
        result = size_order(Side.BUY, PRICE, BTC, SizingConfig(fraction=D(1)), available_quote=D(available))
        assert isinstance(result, SizingRejected), available
        assert result.reason is RejectionReason.INSUFFICIENT_BALANCE


def test_sell_sizes_the_whole_position_down_to_the_lot_step() -> None:
    result = size_order(Side.SELL, PRICE, BTC, SizingConfig(), available_quote=D(0), position=D("0.123456789"))
    assert isinstance(result, SizedOrder)
    assert result.quantity == D("0.12345")
    assert (result.reserved_asset, result.reserved_amount) == ("BTC", D("0.12345"))


def test_sell_without_position_is_no_position_and_dust_is_below_minimum() -> None:
    result = size_order(Side.SELL, PRICE, BTC, SizingConfig(), available_quote=D("1000"), position=D(0))
    assert isinstance(result, SizingRejected) and result.reason is RejectionReason.NO_POSITION
    dust = size_order(Side.SELL, PRICE, BTC, SizingConfig(), available_quote=D(0), position=D("0.000009"))
    assert isinstance(dust, SizingRejected) and dust.reason is RejectionReason.BELOW_MIN_QUANTITY
    small = size_order(Side.SELL, PRICE, BTC, SizingConfig(), available_quote=D(0), position=D("0.0001"))
    assert isinstance(small, SizingRejected) and small.reason is RejectionReason.BELOW_MIN_NOTIONAL


def test_sell_never_exceeds_the_available_base_balance() -> None:
    result = size_order(
        Side.SELL, PRICE, BTC, SizingConfig(), available_quote=D(0), position=D("0.5"), available_base=D("0.2")
    )
    assert isinstance(result, SizedOrder) and result.quantity == D("0.2")
    none = size_order(
        Side.SELL, PRICE, BTC, SizingConfig(), available_quote=D(0), position=D("0.5"), available_base=D(0)
    )
    assert isinstance(none, SizingRejected) and none.reason is RejectionReason.INSUFFICIENT_BALANCE


def test_atr_mode_risks_a_fraction_of_equity_per_stop() -> None:
    config = SizingConfig(mode=SizingMode.ATR, risk_fraction=D("0.01"), stop_multiple=D("2"))
    result = size_order(
        Side.BUY, PRICE, BTC, config, available_quote=D("10000"), equity=D("10000"), atr=D("250")
    )
    assert isinstance(result, SizedOrder)
    # 10000 x 0.01 / (250 x 2) = 0.2 BTC, so a 2-ATR stop loses 100 USDT; 0.2 BTC reserves
    # 9424.69 x 1.0015 = 9438.8 <= 10000, so nothing caps it.
    assert result.quantity == D("0.2")
    capped = size_order(
        Side.BUY, PRICE, BTC, config, available_quote=D("5000"), equity=D("10000"), atr=D("250")
    )
    assert isinstance(capped, SizedOrder) and capped.reserved_amount <= D("5000")
    assert capped.quantity < D("0.2")


def test_atr_mode_without_atr_refuses_instead_of_guessing() -> None:
    config = SizingConfig(mode=SizingMode.ATR)
    result = size_order(Side.BUY, PRICE, BTC, config, available_quote=D("10000"), equity=D("10000"), atr=None)
    assert isinstance(result, SizingRejected) and result.reason is RejectionReason.NO_PRICE


def test_step_helpers_and_config_validation() -> None:
    assert floor_to_step(D("0.123456"), D("0.001")) == D("0.123")
    assert ceil_to_step(D("0.123001"), D("0.001")) == D("0.124")
    assert floor_to_step(D("1.5"), D(0)) == D("1.5")
    with pytest.raises(ValueError):
        SizingConfig(fraction=D("1.5"))
    with pytest.raises(ValueError):
        SizingConfig(max_trade_notional=D(0))
    with pytest.raises(ValueError):
        size_order(Side.BUY, D(0), BTC, SizingConfig(), available_quote=D(1))


def test_a_quantity_beyond_decimal_precision_is_refused_instead_of_looping_forever() -> None:
    # An absurd balance at a tiny price: the quantity needs more than 28 significant digits, so
    # stepping it down by the lot step changes nothing; the old loop never ended (found by a
    # random-input comparison). Run in a thread to fail, not hang.
    import threading

    huge = D("123456789012345678901234.56789")
    config = SizingConfig(fraction=D(1), fee_buffer=D("0.001"), slippage_buffer=D("0.001"))
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(size_order(Side.BUY, D("0.1"), BTC, config, available_quote=huge)), daemon=True
    )
    worker.start()
    worker.join(timeout=10)
    assert outcome, "size_order did not return"
    result = outcome[0]
    if isinstance(result, SizedOrder):
        assert result.reserved_amount <= huge
    else:
        assert isinstance(result, SizingRejected) and result.reason is RejectionReason.MAX_ORDER_NOTIONAL
        assert "precision" in result.detail
