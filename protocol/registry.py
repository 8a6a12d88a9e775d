"""The one list of message types, and the lookup by schema id built from it."""

from __future__ import annotations

from typing import Final

from protocol.envelope import Message
from protocol.messages import (
    CancelOrder,
    Candle,
    ClosePosition,
    DataGap,
    EmergencyStop,
    ExecutionReport,
    Heartbeat,
    IndicatorSnapshot,
    OrderRequest,
    PauseStrategy,
    PositionUpdate,
    RiskMetrics,
    RiskRejection,
    Signal,
    SignalsDone,
)

__all__ = ["MESSAGE_CLASSES", "MESSAGE_TYPES"]

# In flow order; the catalogue and schema index list messages in this order.
MESSAGE_CLASSES: Final[tuple[type[Message], ...]] = (
    Candle,
    DataGap,
    IndicatorSnapshot,
    Signal,
    SignalsDone,
    OrderRequest,
    RiskRejection,
    ExecutionReport,
    PositionUpdate,
    RiskMetrics,
    EmergencyStop,
    CancelOrder,
    PauseStrategy,
    ClosePosition,
    Heartbeat,
)


def _index(classes: tuple[type[Message], ...]) -> dict[str, type[Message]]:
    index: dict[str, type[Message]] = {}
    for cls in classes:
        schema_id = cls.schema_id()
        if schema_id in index:
            # Two classes on one id would make decoding depend on import order.
            raise RuntimeError(f"{cls.__name__} and {index[schema_id].__name__} share {schema_id}")
        index[schema_id] = cls
    return index


MESSAGE_TYPES: Final[dict[str, type[Message]]] = _index(MESSAGE_CLASSES)
