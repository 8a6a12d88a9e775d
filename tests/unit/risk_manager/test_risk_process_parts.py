"""Pure parts around the agent: settings, holdings from ledger views, outgoing messages, CLI guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from agents.cli import app
from agents.risk_manager.holdings import holdings
from agents.risk_manager.metrics import UnpricedAsset
from agents.risk_manager.outgoing import audit_record, order_request, replay
from agents.risk_manager.settings import RiskSettings, parse_balances
from agents.risk_manager.sizing import SizedOrder, SizingMode
from infra.db.ledger import DecisionKind, DecisionView, PositionView, ReservationStatus, ReservationView
from protocol import OrderRequest, RejectionReason, RiskRejection, Side, Signal, client_order_id_for

NOW = datetime(2021, 10, 1, tzinfo=UTC)


def settings(**env: str) -> RiskSettings:
    return RiskSettings(**env)  # type: ignore[arg-type]


def test_settings_map_to_limits_and_sizing() -> None:
    s = settings(RISK_MAX_PRICE_AGE="30", RISK_SIZING_MODE="atr", RISK_SIZING_FRACTION="1",
                 RISK_MAX_ORDER_NOTIONAL="500", PAPER_BALANCES="usdt:100, BTC:0.5")
    assert s.limits().max_price_age == timedelta(seconds=30)
    assert s.limits().max_order_notional == D("500")
    assert s.sizing().mode is SizingMode.ATR and s.sizing().fraction == D(1)
    assert s.initial_balances == {"USDT": D("100"), "BTC": D("0.5")}
    assert s.quote_asset == "USDT"


def test_clock_and_market_source_follow_the_data_source_and_mode() -> None:
    assert settings(DATA_SOURCE="replay").signal_clock
    assert not settings(DATA_SOURCE="exchange").signal_clock
    assert not settings(DATA_SOURCE="replay", RISK_CLOCK="wall").signal_clock
    assert not settings(TRADING_MODE="paper").markets_from_exchange
    assert settings(TRADING_MODE="live").markets_from_exchange
    assert not settings(TRADING_MODE="live", RISK_MARKET_SOURCE="snapshot").markets_from_exchange


@pytest.mark.parametrize("text", ["USDT", "USDT:-1", "USDT:abc", ":5"])
def test_bad_paper_balances_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_balances(text)


def position(strategy: str, symbol: str, qty: str) -> PositionView:
    return PositionView(strategy, "binance", symbol, D(qty), D("40000") if D(qty) else None, D(0), D(0))


def reservation(strategy: str, side: Side, remaining: str, symbol: str = "BTC/USDT") -> ReservationView:
    return ReservationView(
        id=1, client_order_id=client_order_id_for(uuid4()), signal_id=uuid4(), strategy_id=strategy,
        exchange="binance", symbol=symbol, side=side, asset="USDT" if side is Side.BUY else "BTC",
        amount=D(remaining), remaining=D(remaining), quantity=D("0.01"), status=ReservationStatus.HELD,
        filled_quantity=D(0), filled_quote=D(0), last_report_status=None, created_at=NOW, expires_at=NOW, updated_at=NOW,
    )


def test_holdings_count_positions_pending_buys_and_pending_sells() -> None:
    positions = [position("a", "BTC/USDT", "0.3"), position("b", "BTC/USDT", "0"), position("c", "ETH/USDT", "2")]
    reservations = [
        reservation("a", Side.SELL, "0.1"),  # a already sells 0.1 of its 0.3
        reservation("b", Side.BUY, "500"),  # b has an open BUY: exposure, and a position "slot"
    ]
    marks = {"BTC": D("50000"), "ETH": D("3000")}
    a = holdings(positions, reservations, marks, strategy_id="a", exchange="binance", symbol="BTC/USDT")
    assert a.sellable == D("0.2") and a.has_exposure
    assert a.open_positions == 3  # a (BTC), c (ETH), b (pending BUY)
    assert a.symbol_exposure == D("0.3") * D("50000") + D("500")
    assert a.total_exposure == a.symbol_exposure + D("6000")
    b = holdings(positions, reservations, marks, strategy_id="b", exchange="binance", symbol="BTC/USDT")
    assert b.sellable == 0 and b.has_exposure
    new = holdings(positions, reservations, marks, strategy_id="z", exchange="binance", symbol="BTC/USDT")
    assert not new.has_exposure
    with pytest.raises(UnpricedAsset):
        holdings(positions, reservations, {"BTC": D("1")}, strategy_id="a", exchange="binance", symbol="BTC/USDT")


def make_signal() -> Signal:
    return Signal(
        source="strategy", strategy_id="s1", strategy="rsi", exchange="binance", symbol="BTC/USDT",
        timeframe="15m", side="BUY", confidence=0.7, reason="r", indicators={}, candle_time=NOW, price=D("100"),
    )


def view(kind: DecisionKind, reason: RejectionReason | None, output: dict | None) -> DecisionView:  # type: ignore[type-arg]
    return DecisionView(1, uuid4(), "s1", "BTC/USDT", "BUY", kind, reason, "why", {}, output, None, NOW)


def test_replay_rebuilds_exactly_what_was_decided() -> None:
    sig = make_signal()
    sized = SizedOrder(Side.BUY, D("0.5"), D("100"), D("50"), "USDT", D("50.075"))
    order = order_request(sig, sized, source="risk_manager", reference_time=NOW - timedelta(minutes=15),
                          expires_at=NOW + timedelta(minutes=5))
    assert order.client_order_id == client_order_id_for(sig.message_id)
    record = audit_record(sig, DecisionKind.APPROVED, "ok", {}, decided_at=NOW, output=order)
    assert replay(sig, view(DecisionKind.APPROVED, None, dict(record.output or {})), source="risk_manager") == order
    # An INSUFFICIENT_BALANCE row may carry the order it could not reserve for: it replays as a rejection.
    again = replay(sig, view(DecisionKind.REJECTED, RejectionReason.INSUFFICIENT_BALANCE, dict(record.output or {})),
                   source="risk_manager")
    assert isinstance(again, RiskRejection) and again.reason is RejectionReason.INSUFFICIENT_BALANCE
    assert again.message_id == replay(sig, view(DecisionKind.REJECTED, RejectionReason.INSUFFICIENT_BALANCE, None),
                                      source="risk_manager").message_id  # type: ignore[union-attr]
    assert replay(sig, view(DecisionKind.IGNORED, None, None), source="risk_manager") is None
    assert isinstance(OrderRequest.model_validate(record.output), OrderRequest)


def test_emergency_stop_cli_refuses_bad_state_and_publishes_nothing_without_confirmation() -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["emergency-stop", "maybe", "--reason", "x", "-y"])
    assert bad.exit_code != 0 and "on" in bad.output
    # Declined: aborts before connecting (an unreachable broker URL proves nothing was attempted).
    declined = runner.invoke(app, ["emergency-stop", "on", "--reason", "x"], input="n\n",
                             env={"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert declined.exit_code == 1 and "Aborted" in declined.output


async def test_an_unreachable_price_store_raises_for_a_retry_instead_of_reading_as_no_price() -> None:
    from agents.risk_manager.prices import latest_close, reference_price
    from infra.faults import is_transient
    from infra.influx import InfluxPriceStore, PriceStoreUnavailable
    from tests.support.own_services import free_port

    # Nothing listens on the port: InfluxDB is down. A NO_PRICE rejection here would be a
    # decision an undisturbed run never makes; raising lets the bus retry the signal.
    async with InfluxPriceStore(f"http://127.0.0.1:{free_port()}", "prices", max_attempts=1) as down:
        with pytest.raises(PriceStoreUnavailable) as caught:
            await reference_price(down, make_signal(), signal_clock=True, max_age=timedelta(minutes=30), wall_now=NOW)
        assert is_transient(caught.value)
        with pytest.raises(PriceStoreUnavailable):
            await latest_close(down, "binance", "BTC/USDT", "15m")
