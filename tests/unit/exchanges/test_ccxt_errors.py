"""The ccxt error mapping and credential scrubbing, on ccxt's real exception classes."""

from __future__ import annotations

import ccxt
import pytest

from infra.exchanges.adapter import AdapterError, OrderOutcomeUnknown, OrderRejected, RateLimited
from infra.exchanges.ccxt_errors import MAX_MESSAGE, is_duplicate_order, scrub, translate

KEY = "unitKEYa1b2c3d4e5f6"
SECRET = "unitSECRETf6e5d4c3b2a1"
SECRETS = (KEY, SECRET)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # Rate limits are NetworkErrors in ccxt: they must not fall into "unknown".
        (ccxt.RateLimitExceeded("binance 429"), RateLimited),
        (ccxt.DDoSProtection("binance 418"), RateLimited),
        (ccxt.InsufficientFunds("binance Account has insufficient balance for requested action."), OrderRejected),
        (ccxt.InvalidOrder("binance Duplicate order sent."), OrderRejected),
        (ccxt.OrderNotFound("binance Order does not exist."), OrderRejected),
        (ccxt.BadRequest('binance {"code":-1013,"msg":"Filter failure: NOTIONAL"}'), OrderRejected),
        (ccxt.BadSymbol("binance Invalid symbol."), OrderRejected),
        (ccxt.AuthenticationError("binance Invalid API-key"), OrderRejected),
        (ccxt.PermissionDenied("binance no permission"), OrderRejected),
        (ccxt.RequestTimeout("binance POST http://x/api/v3/order"), OrderOutcomeUnknown),
        (ccxt.ExchangeNotAvailable("binance 503 Service Unavailable."), OrderOutcomeUnknown),
        (ccxt.NetworkError("connection reset"), OrderOutcomeUnknown),
        (ccxt.InvalidNonce("binance -1021 outside recvWindow"), OrderOutcomeUnknown),
        (ccxt.BadResponse("binance unparseable"), OrderOutcomeUnknown),
        (ccxt.OperationFailed('binance {"code":-1001,"msg":"Internal error"}'), OrderOutcomeUnknown),
        # Unclassified: cannot prove the order was not placed.
        (ccxt.ExchangeError('binance {"code":-9999,"msg":"?"}'), OrderOutcomeUnknown),
        (ValueError("bug while parsing the answer"), OrderOutcomeUnknown),
    ],
)
def test_placing_errors_map_by_ccxt_hierarchy(error: Exception, expected: type[AdapterError]) -> None:
    mapped = translate(error, placing=True, secrets=SECRETS)
    assert type(mapped) is expected
    assert str(mapped).startswith(type(error).__name__ + ": ")
    assert str(error) in str(mapped)  # the exchange's message is kept


def test_a_refusal_of_a_query_is_not_an_order_rejection() -> None:
    mapped = translate(ccxt.AuthenticationError("binance bad key"), placing=False, secrets=SECRETS)
    assert type(mapped) is AdapterError
    assert type(translate(ccxt.RequestTimeout("t"), placing=False, secrets=SECRETS)) is OrderOutcomeUnknown
    assert type(translate(ccxt.RateLimitExceeded("r"), placing=False, secrets=SECRETS)) is RateLimited


def test_scrub_removes_credentials_signature_and_signed_query() -> None:
    text = (
        f"binance GET http://127.0.0.1:1/api/v3/order?symbol=BTCUSDT&timestamp=1&signature=ab12cd34 "
        f"headers {{'X-MBX-APIKEY': '{KEY}'}} body signature=ff00 secret {SECRET}"
    )
    clean = scrub(text, SECRETS)
    assert KEY not in clean and SECRET not in clean
    assert "ab12cd34" not in clean and "ff00" not in clean
    assert "symbol=BTCUSDT" not in clean  # the whole signed query goes
    assert clean.startswith("binance GET http://127.0.0.1:1/api/v3/order?***")


def test_scrub_bounds_length_and_ignores_empty_secrets() -> None:
    assert scrub("x" * 2000, ("", None)) == "x" * MAX_MESSAGE + "..."


def test_translate_scrubs_the_message() -> None:
    error = ccxt.ExchangeError(f"binance echo {KEY} {SECRET}")
    assert KEY not in str(translate(error, placing=True, secrets=SECRETS))
    assert SECRET not in str(translate(error, placing=True, secrets=SECRETS))


def test_duplicate_order_detection() -> None:
    assert is_duplicate_order(ccxt.InvalidOrder("binance Duplicate order sent."))
    assert not is_duplicate_order(ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"))
    assert not is_duplicate_order(ccxt.ExchangeError("Duplicate order sent."))
