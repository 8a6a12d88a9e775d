"""Client order ids: deterministic per signal within one deployment (a redelivered signal maps
to the same id), different between deployments (a fresh database never adopts the orders of
another deployment on the same exchange account), and always checked against the signal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from protocol import OrderRequest, client_order_id_for

SIGNAL = UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def order(client_order_id: str, signal_id: UUID = SIGNAL) -> OrderRequest:
    return OrderRequest(
        source="risk_manager", signal_id=signal_id, client_order_id=client_order_id, strategy_id="sma",
        exchange="binance", symbol="BTC/USDT", side="BUY", order_type="MARKET", quantity=Decimal("0.01"),
        reference_price=Decimal("47000"), reference_time=T0, reserved_asset="USDT", reserved_amount=Decimal("480"),
        expires_at=T0 + timedelta(minutes=5),
    )


def test_deployments_get_different_ids_for_the_same_signal() -> None:
    a, b = client_order_id_for(SIGNAL, "a1b2c3"), client_order_id_for(SIGNAL, "d4e5f6")
    assert a != b and a != client_order_id_for(SIGNAL)
    # Deterministic within one deployment: the redelivered signal gets the same id.
    assert a == client_order_id_for(UUID(str(SIGNAL)), "a1b2c3")
    assert client_order_id_for(uuid4(), "a1b2c3") != a
    assert len(a) <= 36 and a.startswith("tba1b2c3-")


def test_an_order_accepts_its_salted_id_and_refuses_one_of_another_signal() -> None:
    assert order(client_order_id_for(SIGNAL, "a1b2c3")).client_order_id == client_order_id_for(SIGNAL, "a1b2c3")
    with pytest.raises(ValidationError, match="client_order_id_for"):
        order(client_order_id_for(uuid4(), "a1b2c3"))


@pytest.mark.parametrize("salt", ["", "ABCDEF", "a1b2c", "a1b2c3d", "zzzzzz"])
def test_a_malformed_salt_is_refused(salt: str) -> None:
    with pytest.raises(ValueError, match="deployment salt"):
        client_order_id_for(SIGNAL, salt)
