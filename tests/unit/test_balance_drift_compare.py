"""Ledger-versus-exchange comparison: a relative tolerance per asset, missing assets as zero."""

from __future__ import annotations

from decimal import Decimal as D

from infra.exchanges.account import compare


def test_equal_or_within_tolerance_is_no_drift() -> None:
    assert compare({"USDT": D("1000"), "BTC": D("0")}, {"USDT": D("1000")}, D("0")) == {}
    assert compare({"USDT": D("1000")}, {"USDT": D("999.95")}, D("0.0001")) == {}


def test_a_difference_beyond_the_tolerance_or_an_asset_on_one_side_only_is_drift() -> None:
    found = compare({"USDT": D("1000"), "BTC": D("0.01")}, {"USDT": D("900"), "BNB": D("0.5")}, D("0.0001"))
    assert found == {
        "BNB": {"ledger": "0", "exchange": "0.5"},
        "BTC": {"ledger": "0.01", "exchange": "0"},
        "USDT": {"ledger": "1000", "exchange": "900"},
    }
