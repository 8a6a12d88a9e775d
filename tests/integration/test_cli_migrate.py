"""`tradebus migrate` on a real, fresh Postgres database."""

import pytest
from typer.testing import CliRunner

from agents.cli import app
from infra.db import current_revision, head_revision

pytestmark = pytest.mark.integration


async def test_migrate_command_brings_a_fresh_database_to_head(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    assert await current_revision(postgres_url) is None
    import asyncio

    # The command runs its own event loop, so it runs in a worker thread here.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert f"is at revision {head_revision()}" in result.output
    assert await current_revision(postgres_url) == head_revision()
