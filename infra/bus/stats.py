"""Counters the heartbeat reports."""

from dataclasses import dataclass


@dataclass
class BusStats:
    consumed: int = 0
    published: int = 0
    dead_lettered: int = 0
    retried: int = 0
    errors: int = 0
