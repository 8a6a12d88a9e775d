"""ORM models, one module per area (messaging now; ledger, orders, risk in later migrations).

Every model module is imported here so ``Base.metadata`` is complete for migrations and
for the model-versus-migration drift check.
"""

from infra.db.models.base import NAMING_CONVENTION, Base
from infra.db.models.controls import Control, StrategyPause
from infra.db.models.ledger import Balance, Fill, Position, Reservation, RiskDecision, RiskState, SignalProgress
from infra.db.models.live import BalanceDrift, Deployment
from infra.db.models.messaging import ProcessedMessage
from infra.db.models.orders import ExecutionHalt, Order, OrderEvent, PaperBalance, PaperFill, PaperOrder

__all__ = [
    "NAMING_CONVENTION",
    "Balance",
    "BalanceDrift",
    "Base",
    "Control",
    "Deployment",
    "Fill",
    "Position",
    "ProcessedMessage",
    "ExecutionHalt",
    "Order",
    "OrderEvent",
    "PaperBalance",
    "PaperFill",
    "PaperOrder",
    "Reservation",
    "RiskDecision",
    "RiskState",
    "SignalProgress",
    "StrategyPause",
]
