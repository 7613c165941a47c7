"""The commands as a user runs them: serve, and run with a given or an embedded database."""

import asyncio
import json
import re
import signal
from pathlib import Path

import asyncpg
import httpx
import pytest

from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import head_revision
from callscope.settings import asyncpg_dsn
from tests.database import database_url, fresh_database_name
from tests.e2e.processes import callscope_process, clean_env, free_port, wait_ready
from tests.factories import packet_body

pytestmark = pytest.mark.usefixtures("db")


def _post(base: str, token: str, call_id: str, sequence: int) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/call/stream/{call_id}",
        json=packet_body(sequence),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _printed_tokens(log: Path) -> dict[str, str]:
    text = log.read_text()
    found = dict(re.findall(r"(ingest|supervisor) token:\s+(\S+)", text))
    assert set(found) == {"ingest", "supervisor"}, text
    return found


def _assert_stopped_gracefully(returncode: int | None, log: Path) -> None:
    assert returncode == 0, log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()


def test_serve_ingests_over_a_real_socket_and_stops_cleanly(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS="pbx",
        CALLSCOPE_SUPERVISOR_TOKENS="sup",
    )
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with callscope_process(["serve", "--port", str(port)], env, tmp_path, log) as process:
        wait_ready(base, process, timeout=30, log=log)
        assert _post(base, "pbx", "e2e-1", 1).status_code == 202
        call = httpx.get(f"{base}/v1/calls/e2e-1", headers={"Authorization": "Bearer sup"})
        assert call.json()["packets"]["received"] == 1
    _assert_stopped_gracefully(process.returncode, tmp_path / "serve.log")
    # Every line is one JSON object, uvicorn's own included (a log shipper parses them all).
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert "Application shutdown complete." in [line["event"] for line in lines]
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)


def test_serve_without_a_database_url_explains_itself(tmp_path: Path) -> None:
    with callscope_process(["serve"], clean_env(), tmp_path, tmp_path / "serve.log") as process:
        process.wait(timeout=30)
    assert process.returncode == 2
    assert "CALLSCOPE_DATABASE_URL" in (tmp_path / "serve.log").read_text()


def test_migrate_brings_a_fresh_database_to_head(db_url: str, tmp_path: Path) -> None:
    admin = database_url(db_url, "postgres")  # the server the tests use
    name = fresh_database_name()
    asyncio.run(ensure_database(admin, name))
    try:
        env = clean_env(CALLSCOPE_DATABASE_URL=database_url(admin, name))
        log = tmp_path / "migrate.log"
        for _ in range(2):  # and again: nothing left to do
            with callscope_process(["migrate"], env, tmp_path, log) as process:
                process.wait(timeout=60)
            assert process.returncode == 0, log.read_text()
            assert "database schema is at head" in log.read_text()
        assert asyncio.run(_revision(database_url(admin, name))) == head_revision()
    finally:
        asyncio.run(drop_database(admin, name))


async def _revision(url: str) -> str | None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        revision: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
        return revision
    finally:
        await conn.close()


def _simulate_without_a_token(base: str, env: dict[str, str], cwd: Path) -> None:
    """`callscope simulate` beside a `run` finds the ingest token in the data folder."""
    args = ["simulate", "--url", base, "--calls", "2", "--seconds", "0.2", "--speed", "0"]
    log = cwd / "simulate.log"
    with callscope_process(args, env, cwd, log) as simulator:
        simulator.wait(timeout=60)
    assert simulator.returncode == 0, log.read_text()
    assert "simulated 2 calls" in log.read_text()


def test_run_generates_tokens_once_and_keeps_them(db_url: str, tmp_path: Path) -> None:
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_DATA_DIR=str(tmp_path / "data"),
        CALLSCOPE_AI_PROVIDER="mock",  # tokens are the point here, not Whisper
    )
    tokens: list[dict[str, str]] = []
    for start in range(2):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / f"run-{start}.log"
        with callscope_process(["run", "--port", str(port)], env, tmp_path, log) as process:
            wait_ready(base, process, timeout=30, log=log)
            printed = _printed_tokens(log)
            assert "callscope: AI provider mock, 25% of calls fail (injected)" in log.read_text()
            assert _post(base, printed["ingest"], "e2e-run", start + 1).status_code == 202
            assert _post(base, printed["supervisor"], "e2e-run", 9).status_code == 403
            if start == 1:
                _simulate_without_a_token(base, env, tmp_path)
        tokens.append(printed)
    assert tokens[0] == tokens[1]
    assert json.loads((tmp_path / "data" / "tokens.json").read_text()) == tokens[0]


def test_run_without_a_url_starts_an_embedded_database_that_survives_restarts(
    tmp_path: Path,
) -> None:
    env = clean_env(CALLSCOPE_DATA_DIR=str(tmp_path / "data"))
    pgdata = tmp_path / "data" / "postgres"
    for start, stop_signal in enumerate((signal.SIGTERM, signal.SIGINT)):  # kill, then Ctrl-C
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / f"embedded-{start}.log"
        demo = start == 1  # the real engines, then the same with the brief's failures injected
        args = ["run", "--port", str(port), *(["--demo"] if demo else [])]
        with callscope_process(args, env, tmp_path, log, stop_signal=stop_signal) as process:
            wait_ready(base, process, timeout=120, log=log)
            tokens = _printed_tokens(log)
            injected = "25% of calls fail (injected)" if demo else "no failures injected"
            assert f"callscope: AI provider local, {injected}" in log.read_text()
            assert _post(base, tokens["ingest"], "kept", start + 1).status_code == 202
            call = httpx.get(
                f"{base}/v1/calls/kept", headers={"Authorization": f"Bearer {tokens['supervisor']}"}
            ).json()
            assert call["packets"]["received"] == start + 1
        _assert_stopped_gracefully(process.returncode, log)
        # The database server it started has stopped with it (no process left behind).
        assert "embedded PostgreSQL stopped" in log.read_text()
        assert not (pgdata / "postmaster.pid").exists()
    assert (pgdata / "PG_VERSION").exists()


def test_run_stops_its_embedded_database_even_when_the_grace_period_ends_it(
    tmp_path: Path,
) -> None:
    """A shutdown that overruns CALLSCOPE_SHUTDOWN_GRACE ends the process at once, skipping
    every `finally`: the embedded PostgreSQL it started must stop all the same."""
    env = clean_env(
        CALLSCOPE_DATA_DIR=str(tmp_path / "data"),
        CALLSCOPE_AI_PROVIDER="mock",
        CALLSCOPE_DRAIN_SECONDS="30",  # a drain far longer than the grace period
        CALLSCOPE_SHUTDOWN_GRACE="1",
    )
    pgdata = tmp_path / "data" / "postgres"
    port = free_port()
    log = tmp_path / "overrun.log"
    with callscope_process(["run", "--port", str(port)], env, tmp_path, log) as process:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout=120, log=log)
        assert (pgdata / "postmaster.pid").exists()
    assert process.returncode == 1, log.read_text()[-2000:]
    assert "shutdown_grace_exceeded" in log.read_text()
    assert not (pgdata / "postmaster.pid").exists(), log.read_text()[-2000:]


def test_run_fills_in_only_the_kind_of_token_that_is_missing(db_url: str, tmp_path: Path) -> None:
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_DATA_DIR=str(tmp_path / "data"),
        CALLSCOPE_INGEST_TOKENS="my-pbx-token",
        CALLSCOPE_AI_PROVIDER="mock",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    with callscope_process(["run", "--port", str(port)], env, tmp_path, log) as process:
        wait_ready(base, process, timeout=30, log=log)
        text = log.read_text()
        assert "ingest token:" not in text
        supervisor = re.search(r"supervisor token:\s+(\S+)", text)
        assert supervisor is not None
        assert _post(base, "my-pbx-token", "mixed", 1).status_code == 202
        call = httpx.get(
            f"{base}/v1/calls/mixed", headers={"Authorization": f"Bearer {supervisor[1]}"}
        )
        assert call.status_code == 200
