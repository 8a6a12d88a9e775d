"""Value types of the ledger API: what callers pass in and what they get back.

Everything here is an immutable dataclass or an enum; money, prices and quantities are
``Decimal``. The ORM rows never leave the ledger package, so callers cannot mutate balances
behind the ledger's back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

from protocol.enums import RejectionReason, Side, TradingState

__all__ = [
    "AccountBook",
    "AccountCheck",
    "ApproveOutcome",
    "ApproveStatus",
    "BalanceView",
    "DecisionKind",
    "DecisionRecord",
    "DecisionView",
    "HeldPosition",
    "LedgerError",
    "NewReservation",
    "OpenBuy",
    "PositionView",
    "Refusal",
    "ReservationStatus",
    "ReservationView",
    "RiskStateView",
    "SettlementOutcome",
    "jsonable",
]


class LedgerError(RuntimeError):
    """The ledger refused an operation that would make it wrong (nothing was changed).

    Raised inside the transaction, so every effect of the call, including the processed
    message id, is rolled back; a bus handler that lets it propagate gets the message retried
    and then dead-lettered with this error, for an operator to look at.
    """


class ReservationStatus(StrEnum):
    """Lifecycle of a balance reservation (one per client_order_id)."""

    HELD = "HELD"  # reserved, nothing filled yet
    PARTIALLY_SETTLED = "PARTIALLY_SETTLED"  # some fills settled, the rest still held
    SETTLED = "SETTLED"  # order terminal with fills; the unused rest was released
    RELEASED = "RELEASED"  # order terminal without fills (or released by an operator)
    EXPIRED = "EXPIRED"  # released by the expiry sweeper

    @property
    def is_open(self) -> bool:
        """True while the reservation still holds balance."""
        return self in (ReservationStatus.HELD, ReservationStatus.PARTIALLY_SETTLED)


class DecisionKind(StrEnum):
    """Outcome recorded in the risk decisions audit."""

    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    IGNORED = "IGNORED"  # e.g. a HOLD signal: audited, nothing published as an order


class ApproveStatus(StrEnum):
    """Result of :meth:`Ledger.approve`."""

    RESERVED = "RESERVED"
    DUPLICATE = "DUPLICATE"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    # Refused by the caller's account check under the account lock (the audited reason says why).
    REFUSED = "REFUSED"


@dataclass(frozen=True, slots=True)
class BalanceView:
    """One asset's balance: ``available + reserved == total``, both never negative."""

    asset: str
    total: Decimal
    available: Decimal
    reserved: Decimal


@dataclass(frozen=True, slots=True)
class PositionView:
    """A strategy's position in one symbol (long-only spot: quantity >= 0).

    ``realised_pnl`` excludes fees; ``fees_paid`` is in the quote currency (a fee charged in the
    base asset is valued at its fill price; a fee in a third asset is not included, see
    ``fills``). ``average_entry_price`` is None when flat.
    """

    strategy_id: str
    exchange: str
    symbol: str
    quantity: Decimal
    average_entry_price: Decimal | None
    realised_pnl: Decimal
    fees_paid: Decimal
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewReservation:
    """What the risk manager wants held for one order.

    ``asset``/``amount``: the quote asset and quote amount (including the fee and slippage
    buffer) for a BUY, the base asset and base quantity for a SELL. ``quantity`` is the
    order's base quantity (for the audit and the reservation view).
    """

    client_order_id: str
    signal_id: UUID
    strategy_id: str
    exchange: str
    symbol: str
    side: Side
    asset: str
    amount: Decimal
    quantity: Decimal
    expires_at: datetime
    created_at: datetime | None = None  # None: the database's now()


@dataclass(frozen=True, slots=True)
class ReservationView:
    """A reservation row. ``remaining`` is what it still holds; ``amount`` what it held at first.

    ``filled_quantity`` / ``filled_quote`` are the base quantity and quote value settled so
    far from execution reports (settlement is by increase of the cumulative filled quantity).
    """

    id: int
    client_order_id: str
    signal_id: UUID
    strategy_id: str
    exchange: str
    symbol: str
    side: Side
    asset: str
    amount: Decimal
    remaining: Decimal
    quantity: Decimal
    status: ReservationStatus
    filled_quantity: Decimal
    filled_quote: Decimal
    last_report_status: str | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One risk decision to audit.

    ``inputs`` must hold every input the decision used (reference price and its age, limits,
    balances, sizing ...); Decimals, datetimes, UUIDs and enums are stored as strings.
    ``output`` is the payload the decision produced, e.g. ``order.model_dump(mode="json")``,
    so a redelivered signal can re-publish the identical message. ``decision`` is ignored by
    :meth:`Ledger.approve` (it records APPROVED, or REJECTED/INSUFFICIENT_BALANCE).
    """

    signal_id: UUID
    strategy_id: str
    symbol: str
    side: str
    detail: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    decision: DecisionKind = DecisionKind.REJECTED
    reason: RejectionReason | None = None
    output: Mapping[str, Any] | None = None
    decided_at: datetime | None = None  # None: the database's now(); pass the injectable clock
    # The protective exit the signal is (STOP_LOSS, ...); None for a strategy's own signal.
    exit_reason: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionView:
    """A row of the risk decisions audit."""

    id: int
    signal_id: UUID
    strategy_id: str
    symbol: str
    side: str
    decision: DecisionKind
    reason: RejectionReason | None
    detail: str
    inputs: dict[str, Any]
    output: dict[str, Any] | None
    client_order_id: str | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class ApproveOutcome:
    """Result of :meth:`Ledger.approve`.

    RESERVED: ``reservation`` is new and ``decision`` the APPROVED audit row.
    DUPLICATE: the message was already processed; ``reservation`` and ``decision`` are the
    originals (``reservation`` is None if the original decision was a rejection) so the caller
    re-publishes the identical message. INSUFFICIENT_BALANCE: nothing reserved, the rejection is
    audited (reason INSUFFICIENT_BALANCE) and the message id claimed.
    ``available`` is the asset's available balance after the call (0 if the asset has no row).
    """

    status: ApproveStatus
    reservation: ReservationView | None
    decision: DecisionView | None
    available: Decimal


@dataclass(frozen=True, slots=True)
class SettlementOutcome:
    """Result of :meth:`Ledger.apply_report`.

    ``applied`` is False when the report's message id was already processed (nothing changed).
    ``filled_quantity`` / ``filled_quote``: base quantity and quote value newly settled by this
    report (0 for a duplicate fill or a report older than what is settled). ``fee`` /
    ``fee_currency``: fee newly charged (0 when the fill's trade was already recorded).
    ``released``: amount of the reservation's asset given back to available by this report.
    ``position_changed``: True when the position row changed (publish a PositionUpdate).
    ``reservation`` is None for a report of an order the ledger never reserved that filled
    nothing (execution refused it): booked as a no-op. ``shortfalls``: (asset, amount) the
    balances could not cover (booked as far as available went). ``unbooked``: why the report
    could not be booked at all (only its message id was recorded). Either halts new BUYs.
    """

    applied: bool
    reservation: ReservationView | None
    position: PositionView | None
    filled_quantity: Decimal = Decimal(0)
    filled_quote: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    released: Decimal = Decimal(0)
    position_changed: bool = False
    shortfalls: tuple[tuple[str, Decimal], ...] = ()
    unbooked: str | None = None

    @property
    def problem(self) -> str | None:
        """What an operator must look at, or None when the report was booked in full."""
        if self.unbooked is not None:
            return f"report not booked: {self.unbooked}"
        if self.shortfalls:
            return "not covered by the balances: " + ", ".join(f"{amount} {asset}" for asset, amount in self.shortfalls)
        return None


@dataclass(frozen=True, slots=True)
class RiskStateView:
    """The persisted risk state (a single row): survives restarts."""

    trading_state: TradingState
    trading_state_reason: str | None
    emergency_stop: bool
    emergency_reason: str | None
    changed_by: str | None
    changed_at: datetime
    peak_equity: Decimal | None


def jsonable(value: Any) -> Any:
    """``value`` with Decimals, datetimes, UUIDs and enums as strings, ready for JSONB.

    Decimals become strings, not floats: the audit must show the exact number the decision saw.
    """
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in the decision audit")


@dataclass(frozen=True, slots=True)
class AccountView:
    """A consistent snapshot of the account (see Ledger.account_view)."""

    risk_state: RiskStateView
    balances: dict[str, BalanceView]
    positions: list[PositionView]
    open_reservations: list[ReservationView]


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A non-flat position, as an account check reads it (``PositionView`` without the PnL)."""

    strategy_id: str
    exchange: str
    symbol: str
    quantity: Decimal
    average_entry_price: Decimal | None


@dataclass(frozen=True, slots=True)
class OpenBuy:
    """Open BUY reservations of one strategy and symbol, as an account check reads them:
    ``remaining``, the quote they still hold together."""

    strategy_id: str
    exchange: str
    symbol: str
    side: Side
    remaining: Decimal


@dataclass(frozen=True, slots=True)
class AccountBook:
    """What the account holds and has in flight, read in ONE statement under the account lock
    (positions and open BUYs as of one instant: a fill cannot move a BUY out of one list and
    into the other between two reads)."""

    positions: tuple[HeldPosition, ...]
    open_buys: tuple[OpenBuy, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An account check's refusal: audited as a rejection with ``reason``; ``inputs`` (the
    figures it decided on) go to the audit row's ledger inputs."""

    reason: RejectionReason
    detail: str
    inputs: Mapping[str, Any] = field(default_factory=dict)


# A BUY's account-wide limits, re-checked by the approval under the account lock (decision
# 0029): the book as it stands with every earlier BUY counted, not the snapshot it was decided on.
AccountCheck = Callable[[AccountBook], Refusal | None]
