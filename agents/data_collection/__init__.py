"""The data collection agent: collects candles (replay or exchange), stores them in InfluxDB, publishes them.

Not built yet (issue #3): it exports no AGENT_CLASS, so starting it says so and exits.
"""
