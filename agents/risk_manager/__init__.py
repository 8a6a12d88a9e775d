"""The risk manager agent: approves, sizes and reserves balance for signals, or rejects them with a reason.

Not built yet (issue #5): it exports no AGENT_CLASS, so starting it says so and exits.
"""
