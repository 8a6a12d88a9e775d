"""The technical analysis agent: computes indicators from candles with TA-Lib.

Not built yet (issue #4): it exports no AGENT_CLASS, so starting it says so and exits.
"""
