"""The PAPER_BALANCES setting: the simulated account's starting balances.

Format: ``ASSET:AMOUNT`` pairs separated by commas, e.g. ``USDT:10000,BTC:0.5``. The risk
manager seeds its ledger from the same variable, so both start from the same account.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["parse_balances"]


def parse_balances(text: str) -> dict[str, Decimal]:
    """``"USDT:10000,BTC:0.5"`` -> ``{"USDT": Decimal("10000"), "BTC": Decimal("0.5")}``."""
    balances: dict[str, Decimal] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        asset, sep, amount = part.partition(":")
        asset = asset.strip().upper()
        if not sep or not asset:
            raise ValueError(f"PAPER_BALANCES entry {part!r} is not ASSET:AMOUNT")
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise ValueError(f"PAPER_BALANCES amount {amount!r} of {asset} is not a number") from None
        if not value.is_finite() or value < 0:
            raise ValueError(f"PAPER_BALANCES amount of {asset} must be a finite number >= 0, got {amount!r}")
        if asset in balances:
            raise ValueError(f"PAPER_BALANCES names {asset} twice")
        balances[asset] = value
    return balances
