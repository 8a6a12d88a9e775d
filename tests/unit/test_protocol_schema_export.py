"""Generated docs: a parseable JSON Schema per message, an index, and the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

from protocol import MESSAGE_TYPES
from protocol.schema_export import write_catalogue, write_schemas


def test_write_schemas(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path / "schemas")
    names = {path.name for path in paths}
    for schema_id, cls in MESSAGE_TYPES.items():
        name = f"{cls.SCHEMA_NAME}.v{cls.SCHEMA_VERSION}.json"
        assert name in names
        schema = json.loads((tmp_path / "schemas" / name).read_text())
        assert schema["properties"]["schema"]["const"] == schema_id
        assert schema["additionalProperties"] is False
        assert "schema" in schema["required"]
    index = json.loads((tmp_path / "schemas" / "index.json").read_text())
    assert [entry["schema"] for entry in index["messages"]] == list(MESSAGE_TYPES)


def test_decimals_are_strings_in_the_wire_schema(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    schema = json.loads((tmp_path / "execution.report.v1.json").read_text())
    assert schema["properties"]["quantity"]["type"] == "string"


def test_write_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "messages.md"
    write_catalogue(path)
    text = path.read_text()
    for schema_id, cls in MESSAGE_TYPES.items():
        assert f"### {cls.__name__} — `{schema_id}`" in text
    assert "| `cumulative_filled_quantity` | NonNegativeDecimal | yes |" in text
    assert "risk_manager → execution" in text


def test_committed_docs_are_current(tmp_path: Path) -> None:
    """claudedocs/ must match the models; regenerate with write_schemas/write_catalogue."""
    docs = Path(__file__).resolve().parents[2] / "claudedocs"
    write_schemas(tmp_path / "schemas")
    write_catalogue(tmp_path / "messages.md")
    stale = [
        path.name
        for path in [tmp_path / "messages.md", *sorted((tmp_path / "schemas").iterdir())]
        if not (docs / path.relative_to(tmp_path)).is_file()
        or (docs / path.relative_to(tmp_path)).read_text() != path.read_text()
    ]
    assert not stale, f"regenerate claudedocs (protocol.schema_export): stale {stale}"
