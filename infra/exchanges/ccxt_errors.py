"""ccxt exceptions -> adapter errors, and credential scrubbing of every message that leaves.

ccxt's hierarchy decides the order of the checks: RateLimitExceeded and DDoSProtection are
NetworkErrors, and NetworkError (with RequestTimeout, ExchangeNotAvailable, InvalidNonce) sits
under OperationFailed, next to BadResponse. OrderNotFound is an InvalidOrder. So rate limits are
tested first, then the definitive refusals, then everything that leaves the outcome open.

The rule for placing an order: only an answer that proves the exchange refused it is a
rejection. Anything else (timeouts, 5xx, unparseable answers, unclassified exchange errors, a
bug while reading the answer) is an UNKNOWN outcome, resolved by querying the client order id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ccxt

from infra.exchanges.adapter import AdapterError, OrderOutcomeUnknown, OrderRejected, RateLimited
from infra.metrics.observe import exchange_error

__all__ = ["MAX_MESSAGE", "is_duplicate_order", "scrub", "translate"]

MAX_MESSAGE = 500  # error text kept in exceptions and logs

# Errors that prove the exchange did not act on the request.
_REFUSALS: tuple[type[BaseException], ...] = (
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.BadRequest,  # includes BadSymbol; binance maps -1013 filter failures here
    ccxt.OperationRejected,
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended
    ccxt.NotSupported,
    ccxt.ArgumentsRequired,
)
_RATE_LIMITS: tuple[type[BaseException], ...] = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)

# A signed request's signature and api key can show up in URLs, headers or echoed bodies.
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)
_KEY_HEADER = re.compile(r"(x-mbx-apikey['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+", re.IGNORECASE)
# The query of a signed URL (timestamp, signature, parameters) is never needed to diagnose.
_SIGNED_QUERY = re.compile(r"(https?://[^\s?]+)\?[^\s]*")

_DUPLICATE_MESSAGES = ("duplicate order sent", "clientorderid is duplicated")


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` without any credential, signature or signed query, cut to MAX_MESSAGE chars."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SIGNATURE.sub(r"\1***", text)
    text = _KEY_HEADER.sub(r"\1***", text)
    text = _SIGNED_QUERY.sub(r"\1?***", text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "..."
    return text


def is_duplicate_order(error: BaseException) -> bool:
    """The exchange refused a new order because its client order id is already in use."""
    if isinstance(error, ccxt.DuplicateOrderId):
        return True
    # Binance answers -2010 "Duplicate order sent." (ccxt: a plain InvalidOrder).
    return isinstance(error, ccxt.InvalidOrder) and any(m in str(error).lower() for m in _DUPLICATE_MESSAGES)


def translate(error: BaseException, *, placing: bool, secrets: Iterable[str | None]) -> AdapterError:
    """The adapter error for ``error``, message scrubbed and prefixed with its ccxt class.

    ``placing``: the request was a new order, where a refusal becomes OrderRejected and any
    doubt becomes OrderOutcomeUnknown. For other requests a refusal is a plain AdapterError and
    a failure to get an answer is OrderOutcomeUnknown (the state is unknown; ask again)."""
    message = f"{type(error).__name__}: {scrub(str(error), secrets)}"
    translated: AdapterError
    if isinstance(error, _RATE_LIMITS):
        translated = RateLimited(message)
    elif isinstance(error, _REFUSALS):
        translated = OrderRejected(message) if placing else AdapterError(message)
    else:
        # OperationFailed (network, timeouts, 5xx, bad answers), unclassified ExchangeErrors and
        # anything unexpected: the request may have been acted on.
        translated = OrderOutcomeUnknown(message)
    exchange_error("trading", translated)  # every failed request of the adapter passes here
    return translated
