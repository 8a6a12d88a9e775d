"""Liveness reports every agent publishes."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from protocol.enums import HealthState
from protocol.envelope import Message
from protocol.types import AgentName, NonEmptyStr, UtcDatetime

__all__ = ["Heartbeat"]

_DetailKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_DetailValue = Annotated[str, StringConstraints(max_length=1000)]


class Heartbeat(Message):
    """Periodic liveness and throughput report of one agent process (event)."""

    SCHEMA_NAME: ClassVar[str] = "agent.heartbeat"
    SCHEMA_VERSION: ClassVar[int] = 1

    agent: AgentName = Field(description="Agent name, e.g. risk_manager.")
    instance_id: NonEmptyStr = Field(description="Id of this process (restarts get a new one).")
    started_at: UtcDatetime = Field(description="When this process started (UTC).")
    uptime_seconds: float = Field(ge=0, allow_inf_nan=False, description="Seconds since start.")
    health: HealthState = Field(description="Self-assessed health.")
    consumed: int = Field(ge=0, description="Messages consumed since start.")
    published: int = Field(ge=0, description="Messages published since start.")
    dead_lettered: int = Field(ge=0, description="Messages sent to the dead-letter queue.")
    errors: int = Field(ge=0, description="Handler errors since start.")
    detail: dict[_DetailKey, _DetailValue] = Field(
        default_factory=dict, description="Free-form status, e.g. last candle time per symbol."
    )
