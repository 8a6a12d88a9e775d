"""The MCP server (`tradebus mcp`): read tools over the stores and the bus, and acting tools that
can only propose — a signal of its own strategy id for the risk manager to decide, or a request
for the emergency stop (decision 0020).

Process: ``service`` (an agent: bus, heartbeats, health). Tools: ``server``. Transports: ``run``
(stdio, streamable HTTP with the bearer tokens of ``http``).
"""
