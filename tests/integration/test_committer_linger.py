"""The group committer's linger: media-stream frames wait a little for company, HTTP requests
never do. Batches are told apart by the transaction that wrote each packet (`xmin`)."""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from callscope.calls.vocabulary import Track
from callscope.ingest.batch import BatchResult, IngestOutcome
from callscope.ingest.committer import GroupCommitter
from callscope.ingest.packets import IngestPath, Packet, PacketStatus
from callscope.settings import Settings
from tests.committers import own_committer
from tests.factories import audio
from tests.integration.checks import assert_counters_match_packets

LONG = 30.0  # a linger no test waits out


@asynccontextmanager
async def committer_running(
    db_url: str, settings: Settings, *, stream_linger: float
) -> AsyncIterator[GroupCommitter]:
    async with own_committer(
        db_url, settings, batch_max=64, queue_limit=1000, stream_linger=stream_linger
    ) as (committer, _):
        yield committer


def frame(sequence: int) -> Packet:
    now = time.time()
    return Packet(Track.inbound, sequence, audio(sequence), now, now)


def all_accepted(results: Sequence[BatchResult]) -> bool:
    return all(isinstance(r, IngestOutcome) and r.status is PacketStatus.accepted for r in results)


async def transactions(db: asyncpg.Connection) -> dict[str, set[int]]:
    """Per call, the transactions its packets were written in."""
    rows = await db.fetch("SELECT call_id, xmin::text::bigint AS tx FROM packets")
    written: dict[str, set[int]] = {}
    for row in rows:
        written.setdefault(row["call_id"], set()).add(row["tx"])
    return written


async def test_stream_frames_queued_apart_commit_in_one_batch(
    db: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    async with committer_running(db_url, settings, stream_linger=0.5) as committer:
        first = asyncio.create_task(
            committer.submit_many([("a", frame(1))], path=IngestPath.twilio)
        )
        await asyncio.sleep(0.1)
        second = await committer.submit_many([("b", frame(1))], path=IngestPath.stream)
        assert all_accepted([*await first, *second])
    written = await transactions(db)
    assert written["a"] == written["b"]
    await assert_counters_match_packets(db)


async def test_without_a_linger_each_group_commits_on_its_own(
    db: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    async with committer_running(db_url, settings, stream_linger=0.0) as committer:
        await committer.submit_many([("a", frame(1))], path=IngestPath.twilio)
        await committer.submit_many([("b", frame(1))], path=IngestPath.stream)
    written = await transactions(db)
    assert written["a"] != written["b"]


async def test_an_http_request_ends_the_linger_and_takes_the_waiting_frames_along(
    db: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    async with committer_running(db_url, settings, stream_linger=LONG) as committer:
        streamed = asyncio.create_task(
            committer.submit_many([("streamed", frame(1))], path=IngestPath.stream)
        )
        await asyncio.sleep(0.1)  # the flusher is lingering for the stream's frame
        assert not streamed.done()
        posted = await asyncio.wait_for(
            committer.submit("posted", frame(1), path=IngestPath.http), timeout=LONG / 3
        )
        assert posted.status is PacketStatus.accepted
        assert all_accepted(await streamed)
    written = await transactions(db)
    assert written["streamed"] == written["posted"]


async def test_a_full_batch_ends_the_linger(
    db: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    async with committer_running(db_url, settings, stream_linger=LONG) as committer:
        groups = [
            committer.submit_many([(f"call-{n}", frame(1))], path=IngestPath.twilio)
            for n in range(64)
        ]
        results = await asyncio.wait_for(asyncio.gather(*groups), timeout=LONG / 3)
    assert all_accepted([result for group in results for result in group])
    assert len(set.union(*(await transactions(db)).values())) == 1


async def test_closing_ends_the_linger_and_writes_what_waits(
    db: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    async with committer_running(db_url, settings, stream_linger=LONG) as committer:
        streamed = asyncio.create_task(
            committer.submit_many([("last", frame(1))], path=IngestPath.twilio)
        )
        await asyncio.sleep(0.1)
        await asyncio.wait_for(committer.close(), timeout=LONG / 3)
        assert all_accepted(await streamed)
    assert await db.fetchval("SELECT count(*) FROM packets WHERE call_id = 'last'") == 1
