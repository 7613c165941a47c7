"""The commands as a user runs them: serve, and run with a given or an embedded database."""

import json
import re
import signal
from pathlib import Path

import httpx
import pytest

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
    """uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean stop too."""
    assert returncode in {0, -signal.SIGTERM}
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


def test_serve_without_a_database_url_explains_itself(tmp_path: Path) -> None:
    with callscope_process(["serve"], clean_env(), tmp_path, tmp_path / "serve.log") as process:
        process.wait(timeout=30)
    assert process.returncode == 2
    assert "CALLSCOPE_DATABASE_URL" in (tmp_path / "serve.log").read_text()


def test_run_generates_tokens_once_and_keeps_them(db_url: str, tmp_path: Path) -> None:
    env = clean_env(CALLSCOPE_DATABASE_URL=db_url, CALLSCOPE_DATA_DIR=str(tmp_path / "data"))
    tokens: list[dict[str, str]] = []
    for start in range(2):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / f"run-{start}.log"
        with callscope_process(["run", "--port", str(port)], env, tmp_path, log) as process:
            wait_ready(base, process, timeout=30, log=log)
            printed = _printed_tokens(log)
            assert _post(base, printed["ingest"], "e2e-run", start + 1).status_code == 202
            assert _post(base, printed["supervisor"], "e2e-run", 9).status_code == 403
        tokens.append(printed)
    assert tokens[0] == tokens[1]
    assert json.loads((tmp_path / "data" / "tokens.json").read_text()) == tokens[0]


def test_run_without_a_url_starts_an_embedded_database_that_survives_restarts(
    tmp_path: Path,
) -> None:
    env = clean_env(CALLSCOPE_DATA_DIR=str(tmp_path / "data"))
    for start in range(2):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / f"embedded-{start}.log"
        with callscope_process(["run", "--port", str(port)], env, tmp_path, log) as process:
            wait_ready(base, process, timeout=120, log=log)
            tokens = _printed_tokens(log)
            assert _post(base, tokens["ingest"], "kept", start + 1).status_code == 202
            call = httpx.get(
                f"{base}/v1/calls/kept", headers={"Authorization": f"Bearer {tokens['supervisor']}"}
            ).json()
            assert call["packets"]["received"] == start + 1
        _assert_stopped_gracefully(process.returncode, log)
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()


def test_run_fills_in_only_the_kind_of_token_that_is_missing(db_url: str, tmp_path: Path) -> None:
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_DATA_DIR=str(tmp_path / "data"),
        CALLSCOPE_INGEST_TOKENS="my-pbx-token",
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
