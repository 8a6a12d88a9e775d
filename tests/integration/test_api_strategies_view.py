"""The console lists the configured strategies without running their code: a user strategy
file named in the config is not imported by the API (it runs in the strategy agent), and a
broken one does not hide the other instances. Real Postgres (the pause state is read from it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.db import upgrade_head
from tests.support.api import READ, api_settings, running_app

pytestmark = pytest.mark.integration


async def test_strategies_are_listed_without_importing_user_files(
    rabbitmq_url: str, postgres_url: str, influxdb_database: tuple[str, str], tmp_path: Path
) -> None:
    await upgrade_head(postgres_url)
    mark = tmp_path / "imported"
    # A user file that leaves a mark when imported, and then fails as a broken file would.
    (tmp_path / "mine.py").write_text(f"from pathlib import Path\nPath({str(mark)!r}).write_text('x')\nraise RuntimeError('broken')\n")
    config = tmp_path / "strategies.toml"
    config.write_text('[[strategies]]\nid = "rsi-default"\nkind = "rsi"\n\n'
                      '[[strategies]]\nid = "mine"\nkind = "mine.py:Mine"\n')
    settings = api_settings(rabbitmq_url, postgres_url, influxdb_database, "tbapi_unused", STRATEGY_CONFIG=str(config))
    async with running_app(settings, connect_bus=False) as (_, client):
        response = await client.get("/api/v1/strategies", headers=READ)
    assert response.status_code == 200, response.text
    listed = {s["strategy_id"]: s["kind"] for s in response.json()["strategies"]}
    assert listed == {"rsi-default": "rsi", "mine": "mine.py:Mine"}
    assert not mark.exists(), "the console imported a user strategy file"
