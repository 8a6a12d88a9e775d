"""ORM models, one module per area (messaging now; ledger, orders, risk in later migrations).

Every model module is imported here so ``Base.metadata`` is complete for migrations and
for the model-versus-migration drift check.
"""

from infra.db.models.base import NAMING_CONVENTION, Base
from infra.db.models.messaging import ProcessedMessage

__all__ = ["NAMING_CONVENTION", "Base", "ProcessedMessage"]
