"""Operator commands that act on the running system's infrastructure (not agents themselves)."""
