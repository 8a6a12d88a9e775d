"""API key and secret never appear in an adapter error or a log line, whatever fails."""

from __future__ import annotations

import logging
import re

import pytest

from infra.exchanges.adapter import AdapterError
from infra.exchanges.ccxt_adapter import CcxtAdapter
from tests.integration.test_ccxt_adapter import order_request, trading
from tests.support.fake_binance import ORDER, TEST_API_KEY, TEST_SECRET, FakeBinance

pytestmark = pytest.mark.integration

# A hex HMAC-SHA256 signature: would let anyone replay the signed request.
SIGNATURE = re.compile(r"signature=[0-9a-f]{64}")


async def test_key_and_secret_never_in_errors_or_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # even a debug-level root logger must not leak
    errors: list[str] = []
    async with trading(timeout=0.3, backoff=0.01, read_retries=0) as (fake, adapter):
        # Accepted then timed out (POST), a timed-out signed GET (signature in its URL), 503, 429,
        # an exchange refusal echoing its message.
        cases = [
            (lambda: fake.hold_next(1, seconds=5), lambda: adapter.place(order_request())),
            (lambda: fake.hold_next(1, seconds=5, method="GET"), lambda: adapter.fetch("tb-x", "BTC/USDT")),
            (lambda: fake.fail_next(1, 503, path=ORDER, method="POST"), lambda: adapter.place(order_request())),
            (lambda: fake.fail_next(1, 429, path="/api/v3/account"), adapter.balances),
            (lambda: None, lambda: adapter.place(order_request(quantity="100"))),  # insufficient funds
        ]
        for inject, call in cases:
            inject()
            with pytest.raises(AdapterError) as caught:
                await call()
            errors.append(f"{caught.value!s} {caught.value!r}")
        assert fake.account.signed_requests > 0  # the key and signature were really in use

    # A wrong secret (bad signature) and a wrong key: authentication refusals.
    async with FakeBinance() as fake:
        for key, secret in ((TEST_API_KEY, "wrongSECRET123456"), ("wrongKEY123456", TEST_SECRET)):
            adapter = CcxtAdapter("binance", api_key=key, secret=secret, api_base=fake.url)
            try:
                with pytest.raises(AdapterError) as caught:
                    await adapter.balances()
                errors.append(f"{caught.value!s} {caught.value!r}")
                assert key not in str(caught.value) and secret not in str(caught.value)
            finally:
                await adapter.close()

    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert "order_not_confirmed" in logs  # the adapter's own warnings were captured
    everything = "\n".join(errors) + logs
    assert TEST_API_KEY not in everything
    assert TEST_SECRET not in everything
    assert not SIGNATURE.search(everything)
    assert "RequestTimeout" in errors[0] and "RequestTimeout" in errors[1]
    assert "-1022" in errors[5] and "-2015" in errors[6]  # the exchange's codes are kept
    assert logging.getLogger("tradebus.exchanges.ccxt").getEffectiveLevel() >= logging.INFO
