"""Every message type on the bus, grouped by the part of the flow that produces it."""

from protocol.messages.analysis import IndicatorSnapshot, Indicators, Signal, SignalsDone
from protocol.messages.control import CancelOrder, ClosePosition, EmergencyStop, PauseStrategy
from protocol.messages.execution import ExecutionReport
from protocol.messages.market import Candle, DataGap, candle_id
from protocol.messages.monitoring import Heartbeat
from protocol.messages.portfolio import PositionUpdate, RiskMetrics
from protocol.messages.trading import OrderRequest, RiskRejection, client_order_id_for

__all__ = [
    "CancelOrder",
    "Candle",
    "ClosePosition",
    "DataGap",
    "candle_id",
    "EmergencyStop",
    "ExecutionReport",
    "Heartbeat",
    "IndicatorSnapshot",
    "Indicators",
    "OrderRequest",
    "PauseStrategy",
    "PositionUpdate",
    "RiskMetrics",
    "RiskRejection",
    "Signal",
    "SignalsDone",
    "client_order_id_for",
]
