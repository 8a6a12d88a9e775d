"""Execution's sandbox/live start and balance duty: the ccxt adapter, a credentials check that
says clearly when the key is wrong, seeding the ledger from the exchange, and the periodic
ledger-versus-exchange comparison (``infra.exchanges.account``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agents.execution.settings import ExecutionSettings
from infra.exchanges.account import DriftState, check_drift, seed_from_exchange
from infra.db.ledger import Ledger
from infra.exchanges.adapter import AdapterError, CredentialsRefused, ExchangeAdapter
from infra.exchanges.ccxt_adapter import CcxtAdapter
from infra.logging import get_logger
from infra.settings import TradingMode

__all__ = ["BalanceDuty", "StartProblem", "build_ccxt", "credentials_problem"]

_log = get_logger(component="execution_live")


@dataclass(frozen=True, slots=True)
class StartProblem:
    """Why execution must not start: ``exit_code`` 2 = fix the configuration, 1 = retry later."""

    reason: str
    exit_code: int


def build_ccxt(s: ExecutionSettings) -> CcxtAdapter:
    """The ccxt adapter of the configured exchange (keys checked present by refusal_reason)."""
    assert s.exchange_api_key is not None and s.exchange_api_secret is not None
    return CcxtAdapter(
        s.exchange,
        api_key=s.exchange_api_key.get_secret_value(),
        secret=s.exchange_api_secret.get_secret_value(),
        api_base=s.exchange_api_url,
        sandbox=s.trading_mode is TradingMode.SANDBOX,
        timeout=s.execution_http_timeout,
        recv_window=s.execution_recv_window,
        unknown_margin=s.execution_unknown_margin,
    )


async def credentials_problem(s: ExecutionSettings) -> StartProblem | None:
    """One private call (balances) before anything trades: None when the key works.

    The reason names the exchange and its refusal, never the key or secret."""
    adapter = build_ccxt(s)
    try:
        await adapter.check_credentials()
    except CredentialsRefused as exc:
        return StartProblem(f"{s.exchange} refused the API credentials (EXCHANGE_API_KEY / EXCHANGE_API_SECRET): {exc}", 2)
    except AdapterError as exc:
        return StartProblem(f"{s.exchange} unreachable for the credentials check: {exc}", 1)
    finally:
        await adapter.close()
    return None


class BalanceDuty:
    """Seeds the ledger at start and compares it with the exchange's balances periodically."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], adapter: ExchangeAdapter, s: ExecutionSettings) -> None:
        self._sessions = sessions
        self._ledger = Ledger(sessions)
        self._adapter = adapter
        self._tolerance = s.execution_drift_tolerance
        self.last: DriftState | None = None

    async def seed(self) -> bool:
        return await seed_from_exchange(self._ledger, await self._adapter.balances())

    async def compare(self) -> DriftState | None:
        """One comparison (skipped while orders are in flight); the state it recorded."""
        state = await check_drift(self._sessions, self._ledger, self._adapter.balances, self._tolerance)
        if state is not None:
            self.last = state
        return state

    async def run(self, interval: float, sleep: Callable[[float], Awaitable[bool]],
                  leading: Callable[[], Awaitable[bool]]) -> None:
        """Compare every ``interval`` seconds until ``sleep`` says the agent is stopping, in the
        instance that ``leading`` says runs the duties (decision 0031)."""
        while not await sleep(interval):
            try:
                if await leading():
                    await self.compare()
            except Exception as exc:  # the next round tries again; a failure is no drift
                _log.warning("balance_comparison_failed", error=repr(exc))

    def detail(self) -> dict[str, str]:
        """Heartbeat detail: ``ledger_drift`` none / acknowledged / the differences."""
        if self.last is None:
            return {"ledger_drift": "unchecked"}
        if not self.last.drifted:
            return {"ledger_drift": "none"}
        return {"ledger_drift": ("acknowledged: " if self.last.acknowledged else "") + (self.last.detail or "")}

    def problem(self) -> str | None:
        """A health problem while an unacknowledged drift stops BUYs."""
        if self.last is not None and self.last.blocking:
            return f"ledger drift (new BUYs stopped until `tradebus drift ack`): {self.last.detail}"
        return None
