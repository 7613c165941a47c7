"""Event ids follow commit order (migration 0003), which is what makes `since=` exact: racing
transactions on two app instances, and a plain LISTEN connection sees strictly increasing ids."""

import asyncio
import json

import asyncpg
import httpx

from callscope.settings import asyncpg_dsn
from tests.factories import INGEST, post_packet


async def test_racing_changes_commit_their_events_in_id_order(
    client: httpx.AsyncClient, replica_b: httpx.AsyncClient, db: asyncpg.Connection, db_url: str
) -> None:
    existing = [f"old-{n}" for n in range(40)]
    for call_id in existing:
        assert (await post_packet(client, call_id, 1)).status_code == 202

    arrived: list[int] = []
    listener = await asyncpg.connect(asyncpg_dsn(db_url))
    await listener.add_listener(
        "callscope_events", lambda _c, _p, _ch, payload: arrived.append(_event_id(payload))
    )
    try:
        apps = (client, replica_b)
        await asyncio.gather(
            *(post_packet(apps[n % 2], f"new-{n}", 1) for n in range(40)),
            *(
                apps[n % 2].post(f"/v1/calls/{call_id}/complete", headers=INGEST)
                for n, call_id in enumerate(existing)
            ),
        )
        stored = [r["id"] for r in await db.fetch("SELECT id FROM call_events ORDER BY id")]
        for _ in range(100):
            if len(arrived) >= len(stored) - len(existing):
                break
            await asyncio.sleep(0.05)
    finally:
        await listener.close()

    assert arrived == sorted(arrived)  # commit order is id order
    assert arrived == stored[len(existing) :]  # the 40 old call.created came before listening


def _event_id(payload: object) -> int:
    event_id: int = json.loads(str(payload))["id"]
    return event_id
