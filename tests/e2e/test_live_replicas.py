"""Two API server processes on one database: a supervisor on B sees everything done on A."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready
from tests.factories import packet_body
from tests.live import feed, feed_url, has_type, latest_progress

pytestmark = pytest.mark.usefixtures("db")

PBX = {"Authorization": "Bearer pbx"}
SUPERVISOR_SECRET = "supervisor-secret-7f3a"


@contextmanager
def _replicas(db_url: str, tmp_path: Path, count: int) -> Iterator[list[int]]:
    """`count` `callscope serve` processes; the first also runs the AI worker."""
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS="pbx",
        CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR_SECRET,
        CALLSCOPE_AI_PROVIDER="mock",  # `run` would load Whisper for these tone calls
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.01",
        CALLSCOPE_AI_FAILURE_RATE="0.3",
        CALLSCOPE_AI_SEED="11",
        CALLSCOPE_AI_INLINE_WAIT="0.01",
        CALLSCOPE_AI_MAX_ATTEMPTS="30",
    )
    ports = [free_port() for _ in range(count)]
    with ExitStack() as stack:
        for n, port in enumerate(ports):
            command = "run" if n == 0 else "serve"  # `run` = serve + worker in one process
            log = tmp_path / f"replica-{n}.log"
            process = stack.enter_context(
                callscope_process([command, "--port", str(port)], env, tmp_path, log)
            )
            wait_ready(f"http://127.0.0.1:{port}", process, timeout=60, log=log)
        yield ports


async def test_a_supervisor_on_replica_b_sees_every_event_of_replica_a(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    with _replicas(db_url, tmp_path, count=2) as (port_a, port_b):
        url = feed_url(f"ws://127.0.0.1:{port_b}", token=SUPERVISOR_SECRET)
        async with (
            feed(url) as supervisor,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_a}", timeout=10) as replica_a,
        ):
            await supervisor.read_until(has_type("snapshot"), within=10)
            call_ids = [f"across-{n}" for n in range(5)]
            for call_id in call_ids:
                for sequence in (1, 2, 4):
                    response = await replica_a.post(
                        f"/v1/call/stream/{call_id}", json=packet_body(sequence), headers=PBX
                    )
                    assert response.status_code == 202
                response = await replica_a.post(f"/v1/calls/{call_id}/complete", headers=PBX)
                assert response.status_code == 200

            def all_archived(messages: list[dict[str, object]]) -> bool:
                archived = {m["call_id"] for m in messages if m["type"] == "call.archived"}
                return archived == set(call_ids)

            await supervisor.read_until(all_archived, within=60)
            await supervisor.read_until(
                lambda ms: latest_progress(ms) == dict.fromkeys(call_ids, 3), within=10
            )

    stored = [r["id"] for r in await db.fetch("SELECT id FROM call_events ORDER BY id")]
    received = [m["event_id"] for m in supervisor.messages if m.get("event_id") is not None]
    assert received == stored  # every event row, once each, in order
    latest = {
        entry["call_id"]: entry["packets"]
        for message in supervisor.events("call.progress")
        for entry in message["data"]["calls"]
    }
    for packets in latest.values():
        assert (packets["received"], packets["missing"]) == (3, 1)  # sequence 3 never came
    replica_b_log = (tmp_path / "replica-1.log").read_text()
    assert "/ws/supervisor?token=[redacted]" in replica_b_log  # logged, token blanked
    assert SUPERVISOR_SECRET not in replica_b_log
    attempts = supervisor.events("call.ai_attempt")
    assert any(a["data"]["outcome"] == "failed" for a in attempts)  # retries were visible
