"""The data a `tradebus backtest` run trades: the default warm-up, the package data's symbol,
and what cleaning refused, said instead of dropped silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.backtest.data import Bars, describe_refusals, load_file_bars, select_window
from agents.backtest.report import cleaning_lines
from agents.data_collection.replay import ReplayDataError
from tests.unit.backtest.conftest import make_bars


def test_without_start_the_first_warmup_candles_only_warm_up(btc_bars: Bars) -> None:
    window = select_window(btc_bars, start=None, end=None, warmup=500)
    assert (window.warmup, window.traded) == (500, len(btc_bars) - 500)
    assert window.bars.candles[window.first] is btc_bars.candles[500]
    assert window.bars.candles[0] is btc_bars.candles[0]
    # With an end, the warm-up still comes first and the window stops before the end.
    end = btc_bars.candles[1200].open_time
    bounded = select_window(btc_bars, start=None, end=end, warmup=500)
    assert (bounded.warmup, bounded.traded) == (500, 700)
    # warmup=0 keeps the old meaning: the whole series is traded (reference test, benchmark).
    whole = select_window(btc_bars, start=None, end=None, warmup=0)
    assert (whole.warmup, whole.traded) == (0, len(btc_bars)) and whole.bars is btc_bars


def test_an_explicit_start_is_unchanged(btc_bars: Bars) -> None:
    start = btc_bars.candles[300].open_time
    window = select_window(btc_bars, start=start, end=None, warmup=500)
    assert (window.warmup, window.traded) == (300, len(btc_bars) - 300)  # only 300 exist before it


def test_too_few_candles_for_the_warmup_is_an_error() -> None:
    bars = make_bars([100 + i for i in range(10)])
    assert select_window(bars, start=None, end=None, warmup=8).traded == 2
    with pytest.raises(ValueError, match=r"only 10 candles .* the first 9 warm the indicators up and at least 2 more"):
        select_window(bars, start=None, end=None, warmup=9)
    with pytest.raises(ValueError, match=r"only 5 candles of BTC/USDT 1h before"):
        select_window(bars, start=None, end=bars.candles[5].open_time, warmup=4)


def test_the_package_data_is_btc_only() -> None:
    with pytest.raises(ReplayDataError, match=r"BTC/USDT candles; symbol 'ETH/USDT' needs a replay file"):
        load_file_bars(None, exchange="binance", symbol="ETH/USDT", timeframe="15m")


def test_the_package_datas_cleaning_is_reported(btc_bars: Bars) -> None:
    report = btc_bars.cleaning
    assert report is not None and btc_bars.sliced(0, 10).cleaning is report
    lines = cleaning_lines(report, btc_bars.source)
    text = "\n".join(lines)
    assert len(lines) == 4, text  # one short block
    assert lines[0] == f"data {btc_bars.source}: 8721 rows -> 8686 candles"
    assert "refused 3 rows: 3 x not aligned to the 15m grid (partial bar) (row 2882 at 2021-10-27 13:46:02," in text
    assert "dropped 32 duplicate rows (11 with other values; kept the last)" in text
    assert "9 gaps, 243 missing candles (not filled); largest: 222 from 2021-11-27 06:15 UTC" in text
    assert cleaning_lines(None, "influxdb") == []


def _kline(opened_ms: int, values: str) -> str:
    return f"{opened_ms},{values},{opened_ms + 899_999},0,0,0,0,0"


def test_refusals_are_grouped_by_reason_with_their_first_rows(tmp_path: Path) -> None:
    t0 = 1_633_046_400_000  # 2021-10-01 00:00 UTC
    step = 900_000
    rows = [_kline(t0 + i * step, "43000,43500,42900,43100,10") for i in range(6)]
    rows[1] = _kline(t0 + step, "abc,43500,42900,43100,10")
    rows[2] = _kline(t0 + 2 * step + 60_000, "43000,43500,42900,43100,10")  # off the grid
    rows[4] = _kline(t0 + 4 * step + 60_000, "43000,43500,42900,43100,10")
    path = tmp_path / "some-bad.csv"
    path.write_text("\n".join(rows) + "\n")
    bars = load_file_bars(path, exchange="binance", symbol="BTC/USDT", timeframe="15m")
    assert len(bars) == 3 and bars.cleaning is not None
    assert describe_refusals(bars.cleaning) == [
        "2 x not aligned to the 15m grid (partial bar) (row 3 at 2021-10-01 00:31:00, row 5 at 2021-10-01 01:01:00)",
        "1 x open: price must be a decimal number, got 'abc' (row 2 at 2021-10-01 00:15:00)",
    ]
    text = "\n".join(cleaning_lines(bars.cleaning, bars.source))
    assert "refused 3 rows:" in text and "2 gaps, 3 missing candles (not filled); largest: 2 from 2021-10-01 00:15 UTC" in text


def test_a_file_of_only_bad_rows_says_why(tmp_path: Path) -> None:
    t0 = 1_633_046_400_000
    path = tmp_path / "allbad.csv"
    path.write_text(
        "\n".join([_kline(t0, "43000,42000,43500,43100,10"), _kline(t0 + 900_000, "abc,43500,42900,43100,10")]) + "\n"
    )
    with pytest.raises(ValueError, match=r"in .*allbad.csv: 2 rows read, all refused: 1 x high must be >= low.* \(row 1 at 2021-10-01 00:00:00\) \| 1 x open: price must be a decimal number, got 'abc'"):
        load_file_bars(path, exchange="binance", symbol="BTC/USDT", timeframe="15m")


def test_many_reasons_are_cut_short(tmp_path: Path) -> None:
    t0 = 1_633_046_400_000
    rows = [_kline(t0 + i * 900_000 + i * 1000, "43000,43500,42900,43100,10") for i in range(1, 3)]
    rows += [_kline(t0 + 5 * 900_000, f"{word},43500,42900,43100,10") for word in ("a", "b", "c")]
    rows.append(_kline(t0 + 9 * 900_000, "43000,43500,42900,43100,10"))
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(rows) + "\n")
    report = load_file_bars(path, exchange="binance", symbol="BTC/USDT", timeframe="15m").cleaning
    assert report is not None
    texts = describe_refusals(report, reasons=2)
    assert texts[0].startswith("2 x not aligned") and texts[-1] == "2 rows for 2 other reasons" and len(texts) == 3


def test_loading_reports_progress_over_the_rows(kline_rows: Path) -> None:
    seen: list[tuple[int, int]] = []
    bars = load_file_bars(kline_rows, exchange="binance", symbol="BTC/USDT", timeframe="15m", progress=lambda d, t: seen.append((d, t)))
    assert len(bars) == 12_000
    assert seen[0] == (0, 12_000) and seen[-1] == (12_000, 12_000) and len(seen) >= 3
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.fixture
def kline_rows(tmp_path: Path) -> Path:
    """12,000 grid-aligned kline rows (enough for progress between the first and last call)."""
    t0 = 1_633_046_400_000
    path = tmp_path / "long.csv"
    path.write_text("\n".join(_kline(t0 + i * 900_000, "43000,43500,42900,43100,10") for i in range(12_000)) + "\n")
    return path
