"""The strategy agent: turns indicator history into BUY/SELL/HOLD signals.

Not built yet (issue #4): it exports no AGENT_CLASS, so starting it says so and exits.
"""
