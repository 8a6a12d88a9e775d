"""A BUY's account-wide limits, decided again by the ledger's approval under the account lock. Pure.

``rules.decide`` checks the open positions and the exposure on a snapshot read before the
approval commits. Symbols are decided concurrently (decision 0026) and by several processes
(decision 0025), so two BUYs on two symbols could each pass on a snapshot without the other and
together break a limit, by one order each. The ledger therefore takes the account lock, reads
the positions and open BUYs as they stand (``infra.db.ledger.account_lock``) and calls the
check built here, which puts those figures in the snapshot's place and asks the same
``rules.check_new_risk``: one arithmetic for both, so a book that has not changed since the
snapshot gives the same answer (decision 0029).

Equity and the marks stay the decision's: reservations do not change equity, and the race is
about orders in flight, not prices. A position opened since the snapshot in an asset the
decision read no mark for (a BUY of another symbol filled meanwhile) is valued at its own
entry price, a price the account paid moments ago, never a made-up one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from agents.risk_manager.holdings import holdings
from agents.risk_manager.metrics import UnpricedAsset
from agents.risk_manager.rules import RiskLimits, RiskSnapshot, check_new_risk
from agents.risk_manager.sizing import SizedOrder
from infra.db.ledger import AccountBook, Refusal
from protocol import RejectionReason, Side, Signal, split_symbol

__all__ = ["AccountLimits", "account_check"]


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """The ledger's ``AccountCheck`` for one approved BUY: None (pass) or the refusal."""

    snapshot: RiskSnapshot
    limits: RiskLimits
    notional: Decimal
    marks: Mapping[str, Decimal]
    strategy_id: str
    exchange: str
    symbol: str

    def __call__(self, book: AccountBook) -> Refusal | None:
        marks, at_cost = _marks_with_costs(self.marks, book)
        try:
            held = holdings(book.positions, book.open_buys, marks,
                            strategy_id=self.strategy_id, exchange=self.exchange, symbol=self.symbol)
        except UnpricedAsset as exc:
            return Refusal(RejectionReason.NO_PRICE, f"under the account lock: {exc}", {"valued_at_cost": at_cost})
        snap = replace(self.snapshot, has_exposure=held.has_exposure, open_positions=held.open_positions,
                       symbol_exposure=held.symbol_exposure, total_exposure=held.total_exposure)
        found = check_new_risk(snap, self.notional, self.limits)
        if found is None:
            return None
        reason, detail = found
        inputs: dict[str, Any] = {
            "open_positions": held.open_positions, "has_exposure": held.has_exposure,
            "symbol_exposure": held.symbol_exposure, "total_exposure": held.total_exposure,
            "equity": snap.equity, "notional": self.notional, "valued_at_cost": at_cost,
            "decided_on": {"open_positions": self.snapshot.open_positions,
                           "total_exposure": self.snapshot.total_exposure},
        }
        return Refusal(reason, f"{detail}, counting the orders approved since this signal's snapshot "
                               f"(re-checked under the account lock)", inputs)


def account_check(
    signal: Signal, snapshot: RiskSnapshot, limits: RiskLimits, sized: SizedOrder, marks: Mapping[str, Decimal]
) -> AccountLimits | None:
    """The check for an approved order: a BUY's; a SELL adds no risk (None, never waits)."""
    if sized.side is not Side.BUY:
        return None
    return AccountLimits(snapshot, limits, sized.notional, marks,
                         strategy_id=signal.strategy_id, exchange=signal.exchange, symbol=signal.symbol)


def _marks_with_costs(marks: Mapping[str, Decimal], book: AccountBook) -> tuple[Mapping[str, Decimal], list[str]]:
    """``marks``, plus the entry price of positions in assets it has no mark for."""
    missing = {}
    for position in book.positions:
        base = split_symbol(position.symbol)[0]
        if base not in marks and position.average_entry_price is not None:
            missing.setdefault(base, position.average_entry_price)
    if not missing:
        return marks, []
    return {**missing, **marks}, sorted(missing)
