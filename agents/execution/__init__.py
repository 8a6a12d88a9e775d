"""The execution agent: places orders on the paper exchange or through ccxt and reports their lifecycle.

Not built yet (issue #6): it exports no AGENT_CLASS, so starting it says so and exits.
"""
