"""Every supported layout reads to the same candles; unreadable files say why."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agents.data_collection.replay import (
    RawBar,
    ReplayDataError,
    clean,
    load_and_clean,
    load_binance_csv,
    load_file,
    load_header_csv,
    load_parquet,
)
from agents.data_collection.replay.parsing import epoch_unit, parse_decimal, parse_time

SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "15m"}
START = datetime(2024, 1, 1, tzinfo=UTC)
NAMES = ["Open", "High", "Low", "Close", "Volume"]
# (open, high, low, close, volume) as text; the third bar has the package's first prices.
PRICES = [
    ("42000.5", "42100", "41950.25", "42050", "12.5"),
    ("42050", "42075.125", "42001", "42002", "0"),
    ("43443.0625", "43555.515625", "43443.0625", "43548.7734375", "50628608"),
    ("43548.7734375", "43600", "43500", "43550.0000000001", "0.00000001"),
]


def open_times() -> list[datetime]:
    return [START + timedelta(minutes=15 * i) for i in range(len(PRICES))]


def ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def iso_csv(tmp_path: Path) -> Path:
    rows = [f"{t.isoformat()},{','.join(p)}" for t, p in zip(open_times(), PRICES)]
    return write(tmp_path / "iso.csv", ["timestamp,open,high,low,close,volume", *rows])


def binance_lines(unit: int) -> list[str]:
    lines = []
    for t, (o, h, low, c, v) in zip(open_times(), PRICES):
        start = ms(t) * unit
        close = start + 15 * 60 * 1000 * unit - 1
        lines.append(f"{start},{o},{h},{low},{c},{v},{close},123.45,42,1.5,63000.1,0")
    return lines


def expected(tmp_path: Path) -> list:
    return clean(load_file(iso_csv(tmp_path)), **SERIES).candles


def test_iso_csv_reads_exactly(tmp_path: Path) -> None:
    candles = expected(tmp_path)
    assert [c.open_time for c in candles] == open_times()
    written = [(format(c.open, "f"), format(c.close, "f"), format(c.volume, "f")) for c in candles]
    assert written == [(o, c, v) for o, _, _, c, v in PRICES]


@pytest.mark.parametrize("unit", [1, 1000], ids=["milliseconds", "microseconds"])
def test_binance_kline_csv_same_candles(tmp_path: Path, unit: int) -> None:
    path = write(tmp_path / "BTCUSDT-15m-2024-01.csv", binance_lines(unit))
    assert clean(load_file(path), **SERIES).candles == expected(tmp_path)
    assert clean(load_binance_csv(path), **SERIES).candles == expected(tmp_path)


def test_binance_zip_export(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-15m-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-15m-2024-01.csv", "\n".join(binance_lines(1)) + "\n")
    assert load_and_clean(path, **SERIES).candles == expected(tmp_path)


@pytest.mark.parametrize("scale", [1, 1000], ids=["seconds", "milliseconds"])
def test_header_csv_with_epoch_numbers(tmp_path: Path, scale: int) -> None:
    rows = [f"{ms(t) // 1000 * scale},{','.join(p)}" for t, p in zip(open_times(), PRICES)]
    path = write(tmp_path / "epoch.csv", ["Open_Time,OPEN,High,low,Close,Volume", *rows])
    assert clean(load_header_csv(path), **SERIES).candles == expected(tmp_path)


def test_parquet_with_text_prices_and_timestamps(tmp_path: Path) -> None:
    columns = list(zip(*PRICES))
    table = pa.table(
        {
            "Datetime": pa.array(open_times(), type=pa.timestamp("ms", tz="UTC")),
            **{name: pa.array(col) for name, col in zip(NAMES, columns)},
        }
    )
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    assert clean(load_parquet(path), **SERIES).candles == expected(tmp_path)


def test_parquet_with_float_prices_and_epoch_ms_sniffed(tmp_path: Path) -> None:
    rows = PRICES[:3]  # 43550.0000000001 has no exact double, as any float column would show
    table = pa.table(
        {
            "open_time": [ms(t) for t in open_times()[:3]],
            **{name.lower(): [float(p[i]) for p in rows] for i, name in enumerate(NAMES)},
        }
    )
    path = tmp_path / "bars.data"  # no extension: the magic bytes tell
    pq.write_table(table, path)
    candles = clean(load_file(path), **SERIES).candles
    assert candles == expected(tmp_path)[:3]
    assert candles[2].open == Decimal("43443.0625")


def test_decimal_exactness(tmp_path: Path) -> None:
    bars = load_file(iso_csv(tmp_path))
    assert bars[2].open == Decimal("43443.0625") and str(bars[2].open) == "43443.0625"
    assert str(bars[3].close) == "43550.0000000001"  # float would round this to 43550.0
    assert bars[3].volume == Decimal("0.00000001") and format(bars[3].volume, "f") == "0.00000001"
    candle = clean(bars, **SERIES).candles[2]
    assert candle.model_dump(mode="json")["open"] == "43443.0625"
    # A double's shortest repr, not its binary expansion 0.1000000000000000055...
    assert parse_decimal(0.1) == Decimal("0.1")


def test_raw_bars_keep_unreadable_cells_as_text(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", ["date,open,high,low,close,volume", "soon,1,x,1,1,"])
    assert load_file(path) == [RawBar(1, "soon", Decimal(1), "x", Decimal(1), Decimal(1), "", None)]


def test_epoch_units_by_magnitude() -> None:
    assert epoch_unit(1_704_067_200) == "s"
    assert epoch_unit(1_704_067_200_000) == "ms"
    assert epoch_unit(1_704_067_200_000_000) == "us"
    assert epoch_unit(1_704_067_200_000_000_000) == "ns"
    assert parse_time("1704067200000000000") == (START, None)
    assert parse_time("2024-01-01T01:00:00+01:00") == (START, timedelta(hours=1))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", "", "the file is empty"),
        ("header_only.csv", "time,open,high,low,close,volume\n", "no data rows"),
        ("no_time.csv", "when,open,high,low,close,volume\nx,1,1,1,1,1\n", "no time column"),
        ("two_times.csv", "date,time,open,high,low,close,volume\n", "several time columns"),
        ("no_volume.csv", "time,open,high,low,close\nx,1,1,1,1\n", "missing column(s) ['volume']"),
        ("narrow.csv", "1704067200000,1,1,1\n", "at least 6 columns"),
        ("ragged.csv", "time,open,high,low,close,volume\nx,1,1,1,1,1,1,1\n", "not a readable CSV"),
        ("broken.parquet", "PAR1 not really", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_raise_with_path_and_reason(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReplayDataError) as caught:
        load_file(path)
    assert caught.value.path == str(path)
    assert reason in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ReplayDataError, match="no such file"):
        load_and_clean(tmp_path / "nope.csv", **SERIES)
    with pytest.raises(ReplayDataError, match="no such file"):
        load_file(tmp_path / "nope.parquet")


def test_binance_loader_refuses_a_header(tmp_path: Path) -> None:
    with pytest.raises(ReplayDataError, match="not a Binance kline row"):
        load_binance_csv(iso_csv(tmp_path))
