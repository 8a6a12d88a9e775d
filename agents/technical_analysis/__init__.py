"""The technical analysis agent: consumes closed candles, keeps a rolling window per series
(warmed up from InfluxDB, so a restart loses nothing), computes the indicators with TA-Lib,
writes each snapshot to InfluxDB and publishes it on analysis.indicators.{symbol}.{timeframe}.

The indicator maths is pure and shared with the backtester: ``agents.technical_analysis.indicators``.
"""

from agents.technical_analysis.agent import TechnicalAnalysisAgent
from agents.technical_analysis.settings import TechnicalAnalysisSettings

AGENT_CLASS = TechnicalAnalysisAgent

__all__ = ["AGENT_CLASS", "TechnicalAnalysisAgent", "TechnicalAnalysisSettings"]
