"""CcxtAdapter construction: sandbox urls, credentials required, no network touched."""

from __future__ import annotations

import pytest

from infra.exchanges.ccxt_adapter import CcxtAdapter


async def test_sandbox_uses_the_testnet_urls_and_snapshot_markets() -> None:
    adapter = CcxtAdapter("binance", api_key="k" * 16, secret="s" * 16, sandbox=True)
    try:
        private = adapter._exchange.urls["api"]["private"]
        assert "testnet.binance.vision" in private
        assert "BTC/USDT" in adapter.markets  # from the saved snapshot, no request
    finally:
        await adapter.close()


async def test_api_base_overrides_sandbox_urls() -> None:
    adapter = CcxtAdapter("binance", api_key="k" * 16, secret="s" * 16, sandbox=True, api_base="http://127.0.0.1:9")
    try:
        assert adapter._exchange.urls["api"]["private"] == "http://127.0.0.1:9/api/v3"
    finally:
        await adapter.close()


@pytest.mark.parametrize(("key", "secret"), [("", "s" * 16), ("k" * 16, "")])
def test_credentials_are_required(key: str, secret: str) -> None:
    with pytest.raises(ValueError, match="api key and secret are required") as caught:
        CcxtAdapter("binance", api_key=key, secret=secret)
    assert "k" * 16 not in str(caught.value) and "s" * 16 not in str(caught.value)
