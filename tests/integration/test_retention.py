"""Retention against a real database: what goes, what stays, in how small transactions, what a
dry run says, and the 410 of pruned audio. Calls come in through the API; their ages and
later states are set with SQL (the AI worker is not what is tested here)."""

import asyncio
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from callscope.db.engine import create_engine
from callscope.process import open_process
from callscope.retention import PruneReport, RetentionPolicy, preview, prune, pruning_task
from callscope.settings import Settings
from callscope.supervision import Supervisor
from tests.e2e.processes import clean_env
from tests.factories import INGEST, SUPERVISOR, audio, post_packet
from tests.integration.ai_helpers import FAST_AI

DAYS = 30.0
POLICY = RetentionPolicy(audio_days=DAYS, events_days=DAYS, batch_size=500, interval=60)

# call id: (state, age in days, inbound packets, outbound packets)
CALLS = {
    "old-archived": ("ARCHIVED", 40, 5, 4),
    "old-failed": ("FAILED", 31, 3, 0),
    "young-archived": ("ARCHIVED", 29, 3, 0),
    "old-in-progress": ("IN_PROGRESS", 90, 3, 0),
    "old-completed": ("COMPLETED", 90, 3, 0),
    "old-processing": ("PROCESSING_AI", 90, 3, 0),
}
PRUNED = {"old-archived", "old-failed"}
OLD_PACKETS = 5 + 4 + 3

Observed = Callable[[], Awaitable[list[tuple[str, int, int]]]]
# call.created for each old call, and the state change of those that were completed
OLD_EVENTS = sum(1 + (state != "IN_PROGRESS") for c, (state, *_) in CALLS.items() if "old" in c)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.require_database_url(), pool_size=2)
    yield engine
    await engine.dispose()


async def _seed(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    """Every call of CALLS through the API (packets, then complete unless it is live), then
    moved to its state and age; AI results for each; half the queue log made old."""

    async def one(call_id: str, state: str, inbound: int) -> None:
        for sequence in range(1, inbound + 1):
            assert (await post_packet(client, call_id, sequence)).status_code == 202
        if state != "IN_PROGRESS":
            response = await client.post(f"/v1/calls/{call_id}/complete", headers=INGEST)
            assert response.status_code == 200

    await asyncio.gather(*(one(c, state, n) for c, (state, _, n, _) in CALLS.items()))
    for call_id, (state, age, _, outbound) in CALLS.items():
        await db.execute(
            "UPDATE calls SET state = $2, created_at = now() - make_interval(days => $3), "
            "updated_at = now() - make_interval(days => $3) WHERE call_id = $1",
            call_id,
            state,
            age,
        )
        await _add_outbound(db, call_id, outbound)
        await _add_ai_results(db, call_id)
    await db.execute(
        "UPDATE call_events SET created_at = now() - interval '40 days' WHERE call_id LIKE 'old-%'"
    )
    await db.execute(
        "UPDATE pgqueuer_log SET created = now() - interval '40 days' "
        "WHERE id IN (SELECT id FROM pgqueuer_log ORDER BY id LIMIT 2)"
    )


async def _add_outbound(db: asyncpg.Connection, call_id: str, packets: int) -> None:
    """The agent's side, as a media stream would have stored it."""
    if packets == 0:
        return
    await db.executemany(
        "INSERT INTO packets (call_id, track, sequence, data, sent_at, received_at) "
        "VALUES ($1, 'outbound', $2, $3, 0, now())",
        [(call_id, sequence, audio(sequence)) for sequence in range(1, packets + 1)],
    )
    await db.execute(
        "INSERT INTO call_tracks (call_id, track, packets_received, bytes_received, "
        "max_sequence) VALUES ($1, 'outbound', $2, $3, $2)",
        call_id,
        packets,
        packets * 160,
    )


async def _add_ai_results(db: asyncpg.Connection, call_id: str) -> None:
    await db.execute(
        "INSERT INTO transcripts (call_id, track, text, segments) "
        "VALUES ($1, 'inbound', 'hello there', '[]')",
        call_id,
    )
    await db.execute(
        "INSERT INTO sentiments (call_id, track, label, score) VALUES ($1, 'inbound', 'positive', "
        "0.5)",
        call_id,
    )
    await db.execute(
        "INSERT INTO ai_attempts (call_id, epoch, attempt, step, track, outcome) "
        "VALUES ($1, 0, 1, 'transcribe', 'inbound', 'ok')",
        call_id,
    )


async def _packets_by_call(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT call_id, count(*) AS n FROM packets GROUP BY call_id")
    return {row["call_id"]: row["n"] for row in rows}


async def _kept_rows(db: asyncpg.Connection) -> list[object]:
    """Everything retention must never touch, as one comparable value."""
    return [
        [tuple(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")]
        for table in ("call_tracks", "transcripts", "sentiments", "ai_attempts")
    ] + [
        [
            tuple(r)
            for r in await db.fetch(
                "SELECT call_id, state, created_at, updated_at FROM calls ORDER BY 1"
            )
        ]
    ]


async def _table_counts(db: asyncpg.Connection) -> dict[str, int]:
    tables = ("calls", "packets", "call_events", "pgqueuer_log")
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


async def test_old_archived_and_failed_calls_lose_their_packets_and_keep_everything_else(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    packets_before = await _packets_by_call(db)
    kept_before = await _kept_rows(db)

    report = await prune(engine, POLICY)

    packets_after = await _packets_by_call(db)
    assert set(packets_after) == set(CALLS) - PRUNED
    for call_id in set(CALLS) - PRUNED:  # young, live or not done with AI: untouched
        assert packets_after[call_id] == packets_before[call_id]
    assert await _kept_rows(db) == kept_before  # calls, counts, transcripts, attempts
    marks = await db.fetch("SELECT call_id, audio_pruned_at, audio_prune_pending FROM calls")
    assert {m["call_id"] for m in marks if m["audio_pruned_at"] is not None} == PRUNED
    assert not any(m["audio_prune_pending"] for m in marks)
    assert (report.calls, report.packets) == (len(PRUNED), OLD_PACKETS)

    call = await client.get("/v1/calls/old-archived", headers=SUPERVISOR)
    assert call.status_code == 200
    assert call.json()["packets"]["received"] == 5 + 4  # the counters stay


async def test_old_events_and_queue_log_rows_go_and_young_ones_stay(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    young_events = await db.fetch("SELECT id FROM call_events WHERE call_id NOT LIKE 'old-%'")
    young_log = await db.fetch(
        "SELECT id FROM pgqueuer_log WHERE created > now() - interval '1 day'"
    )

    report = await prune(engine, POLICY)

    assert await db.fetch("SELECT id FROM call_events ORDER BY id") == young_events
    assert await db.fetch("SELECT id FROM pgqueuer_log ORDER BY id") == young_log
    assert report.events == OLD_EVENTS
    assert report.queue_log == 2


async def test_a_dry_run_changes_nothing_and_counts_exactly_what_the_run_removes(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    before = await _table_counts(db)
    marks = await db.fetch("SELECT call_id, audio_pruned_at FROM calls ORDER BY 1")

    would = await preview(engine, POLICY)

    assert await _table_counts(db) == before
    assert await db.fetch("SELECT call_id, audio_pruned_at FROM calls ORDER BY 1") == marks
    did = await prune(engine, POLICY)
    after = await _table_counts(db)
    assert would == PruneReport(
        calls=did.calls, packets=did.packets, events=did.events, queue_log=did.queue_log
    )
    assert would.packets == before["packets"] - after["packets"]
    assert would.events == before["call_events"] - after["call_events"]
    assert would.queue_log == before["pgqueuer_log"] - after["pgqueuer_log"]
    assert after["calls"] == before["calls"]


@asynccontextmanager
async def _observing(db: asyncpg.Connection) -> AsyncIterator[Observed]:
    """Statement triggers that note, for every DELETE of packets, events or queue log rows
    and every UPDATE of calls, the transaction id and how many rows it touched; removed
    when the block ends. Yields a function that reads the notes."""
    await db.execute("""
        CREATE TABLE retention_observed (tbl text, txid bigint, n bigint);
        CREATE FUNCTION retention_observe() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO retention_observed SELECT TG_TABLE_NAME, txid_current(), count(*)
            FROM touched;
            RETURN NULL;
        END $$;
        CREATE TRIGGER observe AFTER DELETE ON packets REFERENCING OLD TABLE AS touched
            FOR EACH STATEMENT EXECUTE FUNCTION retention_observe();
        CREATE TRIGGER observe AFTER DELETE ON call_events REFERENCING OLD TABLE AS touched
            FOR EACH STATEMENT EXECUTE FUNCTION retention_observe();
        CREATE TRIGGER observe AFTER DELETE ON pgqueuer_log REFERENCING OLD TABLE AS touched
            FOR EACH STATEMENT EXECUTE FUNCTION retention_observe();
        CREATE TRIGGER observe AFTER UPDATE ON calls REFERENCING NEW TABLE AS touched
            FOR EACH STATEMENT EXECUTE FUNCTION retention_observe();
    """)

    async def observed() -> list[tuple[str, int, int]]:
        rows = await db.fetch("SELECT tbl, txid, n FROM retention_observed WHERE n > 0")
        return [(row["tbl"], row["txid"], row["n"]) for row in rows]

    try:
        yield observed
    finally:
        await db.execute("""
            DROP TRIGGER observe ON packets; DROP TRIGGER observe ON call_events;
            DROP TRIGGER observe ON pgqueuer_log; DROP TRIGGER observe ON calls;
            DROP FUNCTION retention_observe(); DROP TABLE retention_observed;
        """)


async def test_work_is_split_into_transactions_of_at_most_batch_size_rows(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    small = RetentionPolicy(audio_days=DAYS, events_days=DAYS, batch_size=2)
    async with _observing(db) as observed:
        report = await prune(engine, small)
        notes = await observed()

    per_transaction: dict[int, dict[str, int]] = {}
    for table, txid, n in notes:
        tables = per_transaction.setdefault(txid, {})
        tables[table] = tables.get(table, 0) + n
    # No transaction deleted (or marked) more than two rows of any table...
    assert max(n for tables in per_transaction.values() for n in tables.values()) == 2
    deleted = {
        table: sum(t.get(table, 0) for t in per_transaction.values())
        for table in ("packets", "call_events", "pgqueuer_log")
    }
    assert deleted == {"packets": OLD_PACKETS, "call_events": OLD_EVENTS, "pgqueuer_log": 2}
    # ...so the work took at least one transaction per two rows, each its own commit.
    assert len(per_transaction) == report.batches
    assert report.batches >= sum(math.ceil(n / 2) for n in deleted.values())
    assert (report.calls, report.packets) == (len(PRUNED), OLD_PACKETS)


async def test_the_audio_of_a_pruned_call_is_410_problem_json(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    await prune(engine, POLICY)

    for track in ("", "?track=inbound"):
        gone = await client.get(f"/v1/calls/old-archived/audio{track}", headers=SUPERVISOR)
        assert gone.status_code == 410
        assert gone.headers["content-type"] == "application/problem+json"
        assert gone.json()["code"] == "audio_pruned"
        assert gone.json()["pruned_at"]
    kept = await client.get("/v1/calls/young-archived/audio", headers=SUPERVISOR)
    assert kept.status_code == 200
    assert kept.headers["content-type"] == "audio/wav"

    detail = (await client.get("/v1/calls/old-archived", headers=SUPERVISOR)).json()
    assert detail["audio_pruned_at"]
    assert detail["packets"]["received"] > 0  # the counts stay
    assert all(t["missing_ranges"] == [] for t in detail["tracks"])
    assert all(t["missing_ranges_truncated"] for t in detail["tracks"])
    young = (await client.get("/v1/calls/young-archived", headers=SUPERVISOR)).json()
    assert young["audio_pruned_at"] is None


async def test_a_failed_call_whose_audio_was_pruned_cannot_be_re_driven(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    await prune(engine, POLICY)

    refused = await client.post("/v1/calls/old-failed/retry", headers=SUPERVISOR)

    assert refused.status_code == 410
    assert refused.json()["code"] == "audio_pruned"
    assert await db.fetchval("SELECT state FROM calls WHERE call_id = 'old-failed'") == "FAILED"


async def test_a_run_stopped_inside_a_call_leaves_it_410_and_the_next_run_finishes_it(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    stop = asyncio.Event()
    small = RetentionPolicy(audio_days=DAYS, events_days=None, batch_size=2)

    first = await prune(engine, small, stop=stop, on_batch=lambda _: stop.set())  # one batch

    assert (first.batches, first.packets, first.calls) == (1, 2, 0)
    left = await db.fetchrow(
        "SELECT audio_pruned_at, audio_prune_pending, "
        "(SELECT count(*) FROM packets p WHERE p.call_id = c.call_id) AS packets "
        "FROM calls c WHERE call_id = 'old-archived'"
    )
    assert left is not None
    assert left["audio_pruned_at"] is not None
    assert left["audio_prune_pending"]
    assert left["packets"] == 5 + 4 - 2
    gone = await client.get("/v1/calls/old-archived/audio", headers=SUPERVISOR)
    assert gone.status_code == 410  # never a partly silent WAV

    rest = await prune(engine, small)

    assert (rest.calls, rest.packets) == (len(PRUNED), OLD_PACKETS - 2)
    assert await db.fetchval("SELECT count(*) FROM calls WHERE audio_prune_pending") == 0
    assert set(await _packets_by_call(db)) == set(CALLS) - PRUNED


async def test_without_retention_settings_nothing_is_pruned(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    before = await _table_counts(db)
    forever = RetentionPolicy(audio_days=None, events_days=None)

    assert await preview(engine, forever) == PruneReport()
    assert await prune(engine, forever) == PruneReport()
    assert await _table_counts(db) == before


async def test_the_pruning_task_prunes_under_a_supervisor_and_logs_one_line(
    client: httpx.AsyncClient, db: asyncpg.Connection, engine: AsyncEngine
) -> None:
    await _seed(client, db)
    supervisor = Supervisor()
    with capture_logs() as logs:
        supervisor.start("retention-pruner", pruning_task(engine, POLICY))
        try:
            for _ in range(500):  # until the run's last step, the queue log, is done
                if await db.fetchval("SELECT count(*) FROM pgqueuer_log") == 3:
                    break
                await asyncio.sleep(0.02)
        finally:
            await supervisor.stop()

    assert set(await _packets_by_call(db)) == set(CALLS) - PRUNED
    [line] = [entry for entry in logs if entry["event"] == "retention_pruned"]
    assert set(line) == {
        "event", "log_level", "calls", "packets", "events", "queue_log", "transactions", "seconds"
    }  # fmt: skip
    assert (line["calls"], line["packets"], line["events"]) == (2, OLD_PACKETS, OLD_EVENTS)


@pytest.mark.parametrize(
    ("retention", "pruning"),
    [({"retain_audio_days": 30.0}, True), ({"retain_events_days": 7.0}, True), ({}, False)],
    ids=["audio", "events", "neither"],
)
async def test_a_worker_prunes_once_either_retention_is_set(
    settings: Settings, retention: dict[str, float], *, pruning: bool
) -> None:
    worker_settings = settings.model_copy(update={**FAST_AI, **retention})
    async with open_process(worker_settings, api=False, worker=True) as process:
        tasks = set(process.supervisor.statuses)
    assert "ai-worker" in tasks
    assert ("retention-pruner" in tasks) is pruning


async def _callscope(*args: str, db_url: str, cwd: Path) -> str:
    """`python -m callscope ARGS` with the retention of these tests; its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callscope",
        *args,
        env=clean_env(
            CALLSCOPE_DATABASE_URL=db_url,
            CALLSCOPE_RETAIN_AUDIO_DAYS=str(DAYS),
            CALLSCOPE_RETAIN_EVENTS_DAYS=str(DAYS),
            CALLSCOPE_LOG_JSON="false",
        ),
        cwd=cwd,  # not the repository's .env
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_prune_dry_run_command_prints_the_counts_and_changes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    await _seed(client, db)
    before = await _table_counts(db)

    printed = await _callscope("prune", "--dry-run", db_url=db_url, cwd=tmp_path)

    assert await _table_counts(db) == before
    assert "dry run, nothing changed" in printed
    assert (
        "audio: would drop the packets of 2 ARCHIVED or FAILED calls that ended over 30 days "
        f"ago ({OLD_PACKETS} packets)"
    ) in printed
    assert f"events: would drop {OLD_EVENTS} call events older than 30 days" in printed
    assert "queue log: would drop 2 queue log rows older than 30 days" in printed
