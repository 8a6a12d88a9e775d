"""Several symbols in one replay: the shipped series per symbol, the aligned window, the merge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from agents.data_collection.pacing import merge_by_time, parse_replay_files, replay_window
from agents.data_collection.replay import ReplayDataError, load_and_clean
from protocol import Candle

DAY = timedelta(days=1)
START = datetime(2021, 1, 4, tzinfo=UTC)  # a Monday


def candle(symbol: str, open_time: datetime, timeframe: str = "1d", span: timedelta = DAY) -> Candle:
    price = Decimal("100")
    return Candle(
        source="data_collection", exchange="binance", symbol=symbol, timeframe=timeframe, open_time=open_time,
        close_time=open_time + span, open=price, high=price, low=price, close=price, volume=Decimal("1"),
    )


def daily(symbol: str, days: range, *, weekdays_only: bool = False) -> list[Candle]:
    times = [START + DAY * d for d in days]
    return [candle(symbol, t) for t in times if not weekdays_only or t.weekday() < 5]


# --- the shipped series -------------------------------------------------------------------

def test_the_second_shipped_series_is_netflix_daily_and_btc_has_a_daily_series_too() -> None:
    nflx = load_and_clean("package:NFLX", exchange="binance", symbol="NFLX/USDT", timeframe="1d")
    btc = load_and_clean("package:BTC-USD-1-DAY", exchange="binance", symbol="BTC/USDT", timeframe=None)
    assert (len(nflx.candles), nflx.candles[0].open_time.date().isoformat()) == (1009, "2018-02-05")
    assert nflx.candles[-1].open_time.date().isoformat() == "2022-02-04"
    assert nflx.candles[0].close == Decimal("254.259995")  # the file's own text, not a float
    assert btc.report.timeframe == "1d"
    assert (len(btc.candles), btc.candles[0].open_time.date().isoformat()) == (662, "2020-01-01")
    # The daily BTC range lies inside Netflix's, so the two interleave over their whole span.
    assert nflx.candles[0].open_time < btc.candles[0].open_time < btc.candles[-1].open_time < nflx.candles[-1].open_time


def test_a_shipped_series_is_refused_at_another_timeframe_or_under_an_unknown_name() -> None:
    with pytest.raises(ReplayDataError, match="1d candles"):
        load_and_clean("package:NFLX", exchange="binance", symbol="NFLX/USDT", timeframe="15m")
    with pytest.raises(ReplayDataError, match="known: package:BTC-USD-15-MIN"):
        load_and_clean("package:ETH", exchange="binance", symbol="ETH/USDT", timeframe="1d")


# --- what each symbol replays ------------------------------------------------------------

def test_unset_replay_file_gives_each_symbol_its_shipped_series_at_the_timeframe() -> None:
    assert parse_replay_files(None, ["BTC/USDT", "NFLX/USDT"], "1d") == {
        "BTC/USDT": "package:BTC-USD-1-DAY",
        "NFLX/USDT": "package:NFLX",
    }
    assert parse_replay_files(None, ["BTC/USDT"], "15m") == {"BTC/USDT": "package:BTC-USD-15-MIN"}
    # A lone first symbol with no series of its own keeps the old default (the BTC 15m data).
    assert parse_replay_files(None, ["ETH/USDT"], "15m") == {"ETH/USDT": None}


def test_a_second_symbol_without_data_is_refused_rather_than_left_idle() -> None:
    with pytest.raises(ValueError, match="no replay data for NFLX/USDT"):
        parse_replay_files(None, ["BTC/USDT", "NFLX/USDT"], "15m")
    # Once REPLAY_FILE names files, the old default no longer stands in for a symbol left out.
    with pytest.raises(ValueError, match="no replay data for ETH/USDT"):
        parse_replay_files("SOL/USDT=sol.csv", ["ETH/USDT", "SOL/USDT"], "15m")
    with pytest.raises(ValueError, match="not in SYMBOLS: ETH/USDT"):
        parse_replay_files("eth/usdt=a.csv", ["BTC/USDT"], "15m")


def test_named_files_and_package_references_per_symbol() -> None:
    mapping = parse_replay_files(" BTC/USDT=package:BTC-USD-1-DAY ; nflx/usdt=/data/nflx.csv", ["BTC/USDT", "NFLX/USDT"], "1d")
    assert mapping == {"BTC/USDT": "package:BTC-USD-1-DAY", "NFLX/USDT": Path("/data/nflx.csv")}
    # A plain path serves the first symbol; the second falls back to its shipped series.
    assert parse_replay_files("/data/btc.csv", ["BTC/USDT", "NFLX/USDT"], "1d") == {
        "BTC/USDT": Path("/data/btc.csv"),
        "NFLX/USDT": "package:NFLX",
    }


# --- the window and the merge --------------------------------------------------------------

def test_offset_and_limit_cut_the_first_symbol_and_keep_the_others_in_its_time_span() -> None:
    btc = daily("BTC/USDT", range(0, 30))
    nflx = daily("NFLX/USDT", range(-10, 40), weekdays_only=True)
    window = replay_window({"BTC/USDT": btc, "NFLX/USDT": nflx}, offset=5, limit=10)
    assert window["BTC/USDT"] == btc[5:15]
    first, last = btc[5].open_time, btc[14].open_time
    assert window["NFLX/USDT"] == [c for c in nflx if first <= c.open_time <= last]
    assert len(window["NFLX/USDT"]) == 6  # Saturday 9 to Monday 18 January hold six weekdays
    assert replay_window({"BTC/USDT": btc, "NFLX/USDT": nflx}, offset=0, limit=None) == {"BTC/USDT": btc, "NFLX/USDT": [
        c for c in nflx if btc[0].open_time <= c.open_time <= btc[-1].open_time]}
    assert replay_window({"BTC/USDT": btc, "NFLX/USDT": nflx}, offset=100, limit=5) == {"BTC/USDT": [], "NFLX/USDT": []}
    # One symbol: exactly today's positional cut.
    assert replay_window({"BTC/USDT": btc}, offset=3, limit=4) == {"BTC/USDT": btc[3:7]}


def test_merge_interleaves_by_open_time_with_ties_in_symbol_order_whatever_the_input_order() -> None:
    btc = daily("BTC/USDT", range(0, 14))
    nflx = daily("NFLX/USDT", range(0, 14), weekdays_only=True)
    merged = merge_by_time({"NFLX/USDT": nflx, "BTC/USDT": btc})
    assert merged == merge_by_time({"BTC/USDT": btc, "NFLX/USDT": nflx})
    assert len(merged) == len(btc) + len(nflx)
    keys = [(c.open_time, c.symbol) for c in merged]
    assert keys == sorted(keys)
    assert [c.symbol for c in merged[:3]] == ["BTC/USDT", "NFLX/USDT", "BTC/USDT"]
    # Each symbol keeps its own order.
    assert [c for c in merged if c.symbol == "NFLX/USDT"] == nflx


def test_the_backtester_reads_a_shipped_series_by_name() -> None:
    from agents.backtest.data import load_file_bars

    bars = load_file_bars("package:NFLX", exchange="binance", symbol="NFLX/USDT", timeframe=None)
    assert (bars.source, bars.timeframe, len(bars.candles)) == ("package:NFLX", "1d", 1009)
