"""Operator tooling that watches the running system: the reality check.

Not one of the five agents: it reads the bus, InfluxDB and Postgres and judges whether what the
system says it did is what actually happened.
"""
