"""The Postgres ledger: balances, reservations, positions, fills, risk state and decisions audit.

Entry point: :class:`Ledger` (``Ledger(infra.db.session_factory(engine))``). Pure position
accounting is in :mod:`infra.db.ledger.accounting`; :func:`position_update` builds the
``portfolio.position`` message from a :class:`PositionView`.
"""

from infra.db.ledger.accounting import position_update
from infra.db.ledger.ledger import Ledger
from infra.db.ledger.types import (
    AccountBook,
    AccountCheck,
    AccountView,
    ApproveOutcome,
    ApproveStatus,
    BalanceView,
    DecisionKind,
    DecisionRecord,
    DecisionView,
    LedgerError,
    NewReservation,
    PositionView,
    ReservationStatus,
    Refusal,
    ReservationView,
    RiskStateView,
    SettlementOutcome,
    jsonable,
)

__all__ = [
    "AccountBook",
    "AccountCheck",
    "AccountView",
    "ApproveOutcome",
    "ApproveStatus",
    "BalanceView",
    "DecisionKind",
    "DecisionRecord",
    "DecisionView",
    "Ledger",
    "LedgerError",
    "NewReservation",
    "PositionView",
    "Refusal",
    "ReservationStatus",
    "ReservationView",
    "RiskStateView",
    "SettlementOutcome",
    "jsonable",
    "position_update",
]
