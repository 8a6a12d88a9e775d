"""The data collection agent: collects closed candles (replay of real history, or an exchange
through ccxt), writes them to InfluxDB, then publishes them on
market.candle.{exchange}.{symbol}.{timeframe}."""

from agents.data_collection.agent import DataCollectionAgent

AGENT_CLASS = DataCollectionAgent

__all__ = ["AGENT_CLASS", "DataCollectionAgent"]
