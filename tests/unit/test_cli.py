"""The `tradebus` CLI: schema export and the agent command, through typer's runner."""

import json
from pathlib import Path

from typer.testing import CliRunner

from agents.cli import app
from agents.runtime.launch import EXIT_NOT_AVAILABLE
from protocol import MESSAGE_TYPES

runner = CliRunner()


def test_schema_writes_every_message_and_the_catalogue(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "schemas" / "index.json").read_text())
    names = json.dumps(index)
    for schema_id in MESSAGE_TYPES:
        assert schema_id in names
    catalogue = (tmp_path / "messages.md").read_text()
    assert "execution.report/1" in catalogue and "market.candle/1" in catalogue


def test_agent_command_refuses_unknown_names() -> None:
    result = runner.invoke(app, ["agent", "portfolio"])
    assert result.exit_code == EXIT_NOT_AVAILABLE
