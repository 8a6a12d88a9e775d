"""The risk manager's emergency stop follows the operator's latest word, not the delivery order:
a release produced before an engage but delivered after it (a retry goes to the back of the
queue) changes nothing and is recorded REFUSED, as execution's halt and a strategy pause do.
Real Postgres ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.ops.controls import ControlKind, build_control
from infra.db import session_factory
from infra.db.controls import read_controls
from protocol.enums import ControlOutcome
from protocol.messages import EmergencyStop
from tests.support.ledger import migrated_ledger

pytestmark = pytest.mark.integration

CONSUMER, AGENT = "risk_manager.control", "risk_manager"


def _stop(kind: ControlKind, produced_at: datetime) -> EmergencyStop:
    message = build_control(kind, reason=f"{kind.value} test", requested_by="alice", source="pytest")
    assert isinstance(message, EmergencyStop)
    return message.model_copy(update={"produced_at": produced_at})


async def test_a_release_older_than_the_applied_engage_leaves_the_stop_engaged(postgres_url: str) -> None:
    now = datetime.now(UTC)
    release = _stop(ControlKind.RELEASE_STOP, now - timedelta(seconds=30))
    engage = _stop(ControlKind.ENGAGE_STOP, now)
    async with migrated_ledger(postgres_url) as (ledger, engine):
        assert await ledger.apply_emergency_stop(CONSUMER, engage, AGENT)
        assert not await ledger.apply_emergency_stop(CONSUMER, release, AGENT)  # delivered late
        assert not await ledger.apply_emergency_stop(CONSUMER, release, AGENT)  # and redelivered
        state = await ledger.risk_state()
        assert state.emergency_stop is True, "a stale release undid the operator's later engage"
        rows = {row.message_id: row for row in await read_controls(session_factory(engine), limit=10)}
        assert rows[engage.message_id].outcome is ControlOutcome.APPLIED
        assert rows[release.message_id].outcome is ControlOutcome.REFUSED
        assert len(rows) == 2
        # A newer release is the operator's latest word: it applies.
        newer = _stop(ControlKind.RELEASE_STOP, now + timedelta(seconds=30))
        assert await ledger.apply_emergency_stop(CONSUMER, newer, AGENT)
        assert (await ledger.risk_state()).emergency_stop is False
