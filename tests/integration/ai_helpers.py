"""Running an in-process worker and waiting for calls to settle, for the AI tests."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg
import httpx

from callscope.ai.ports import AIProvider
from callscope.process import open_process
from callscope.settings import Settings
from tests.factories import INGEST, post_packet

FAST_AI = {
    "ai_latency_min": 0.0,
    "ai_latency_max": 0.005,
    "ai_inline_wait": 0.001,
    "ai_retry_base": 0.02,
    "ai_retry_cap": 0.1,
    "ai_breaker_open": 0.05,
    "worker_heartbeat_timeout": 2.0,
    "worker_poll_interval": 0.1,
}


@asynccontextmanager
async def worker_running(
    settings: Settings, provider: AIProvider | None = None
) -> AsyncIterator[None]:
    async with open_process(settings, api=False, worker=True, provider=provider):
        yield


async def make_completed_calls(client: httpx.AsyncClient, call_ids: Iterable[str]) -> None:
    """Three packets each, then complete; calls side by side, as a PBX sends them."""
    limit = asyncio.Semaphore(8)

    async def one(call_id: str) -> None:
        async with limit:
            for sequence in (1, 2, 3):
                assert (await post_packet(client, call_id, sequence)).status_code == 202
            response = await client.post(f"/v1/calls/{call_id}/complete", headers=INGEST)
            assert response.status_code == 200

    await asyncio.gather(*(one(call_id) for call_id in call_ids))


async def wait_for_states(
    db: asyncpg.Connection, states: set[str], *, count: int, within: float = 30.0
) -> None:
    """Until `count` calls are in one of `states`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        settled = await db.fetchval("SELECT count(*) FROM calls WHERE state = ANY($1)", states)
        if settled >= count:
            return
        await asyncio.sleep(0.1)
    rows = await db.fetch("SELECT state, count(*) FROM calls GROUP BY state")
    jobs = await db.fetch(
        "SELECT convert_from(payload, 'UTF8') AS call_id, status, attempts, "
        "execute_after - now() AS due_in FROM pgqueuer ORDER BY id"
    )
    attempts = await db.fetch(
        "SELECT a.call_id, a.step, a.outcome, a.started_at::time FROM ai_attempts a JOIN calls c "
        "USING (call_id) WHERE c.state NOT IN ('ARCHIVED', 'FAILED') ORDER BY a.id"
    )
    raise AssertionError(
        f"calls did not settle: {[tuple(r) for r in rows]}; jobs: {[tuple(j) for j in jobs]}"
        f"; attempts of unsettled calls: {[tuple(a) for a in attempts]}"
    )
