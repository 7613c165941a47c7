"""The built image, run for real with Podman: non-root, Whisper loads with no network at all,
and the three commands work together on a fresh database, read-only, as the chart runs them
(migrate, then an API and a worker with the local engines transcribing a streamed call).

Opt-in, because building the image takes minutes and never runs inside `make test`: build it
with deploy/image/build.sh, then

    CALLSCOPE_IMAGE=localhost/callscope:dev .venv/bin/python -m pytest tests/deploy/test_image.py
"""

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from callscope.db.admin import drop_database, ensure_database
from tests.database import LOCAL_SERVER_URL, database_url, fresh_database_name
from tests.deploy.podman import container, logs, run_once
from tests.e2e.processes import free_port, simulate_speech

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("CALLSCOPE_IMAGE"),
        reason="opt-in: build the image (deploy/image/build.sh), then set CALLSCOPE_IMAGE",
    ),
]

INGEST: Final = "image-ingest-token"
SUPERVISOR: Final = "image-supervisor-token"
_LOAD_MODEL: Final = (
    "from callscope.ai.factory import local_engines; from callscope.settings import Settings; "
    "local_engines(Settings(_env_file=None)); print('whisper loaded')"
)


@pytest.fixture(scope="module")
def image() -> str:
    return os.environ["CALLSCOPE_IMAGE"]


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database on the local server (containers on the host's network reach it)."""
    name = fresh_database_name()
    asyncio.run(ensure_database(LOCAL_SERVER_URL, name))
    try:
        yield database_url(LOCAL_SERVER_URL, name)
    finally:
        asyncio.run(drop_database(LOCAL_SERVER_URL, name))


def test_runs_as_the_unprivileged_user(image: str) -> None:
    done = run_once(image, ["--entrypoint", "id", "-u"], {}, network="none")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10001"


def test_whisper_loads_without_any_network(image: str) -> None:
    done = run_once(image, ["--entrypoint", "python", "-c", _LOAD_MODEL], {}, network="none")
    assert done.returncode == 0, done.stderr
    assert "whisper loaded" in done.stdout


def _wait_ready(base: str, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{name} not ready within {timeout} s:\n{logs(name)}")


def _wait_archived(base: str, call_id: str, timeout: float = 120.0) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {SUPERVISOR}"}
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        detail = httpx.get(f"{base}/v1/calls/{call_id}", headers=headers, timeout=5).json()
        if detail["state"] in ("ARCHIVED", "FAILED"):
            return detail
        time.sleep(0.5)
    raise AssertionError(f"{call_id} still {detail.get('state')} after {timeout} s")


def test_migrate_serve_and_work_together(image: str, fresh_database: str, tmp_path: Path) -> None:
    env = {"CALLSCOPE_DATABASE_URL": fresh_database, "CALLSCOPE_LOG_JSON": "true"}
    migrated = run_once(image, ["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert "schema is at head" in migrated.stdout
    port, metrics_port = free_port(), free_port()
    api_env = {
        **env,
        "CALLSCOPE_PORT": str(port),
        "CALLSCOPE_INGEST_TOKENS": INGEST,
        "CALLSCOPE_SUPERVISOR_TOKENS": SUPERVISOR,
        "CALLSCOPE_DRAIN_SECONDS": "1",
    }
    worker_env = {
        **env,
        "CALLSCOPE_AI_PROVIDER": "local",
        "CALLSCOPE_AI_FAILURE_RATE": "0",
        "CALLSCOPE_WORKER_METRICS_PORT": str(metrics_port),
    }
    base = f"http://127.0.0.1:{port}"
    with container(image, ["serve"], api_env) as api, container(image, ["worker"], worker_env):
        _wait_ready(base, api)
        simulate_speech(
            base, transport="stream", calls=1, ingest=INGEST, supervisor=SUPERVISOR, cwd=tmp_path
        )
        listed = httpx.get(
            f"{base}/v1/calls", headers={"Authorization": f"Bearer {SUPERVISOR}"}, timeout=5
        ).json()
        [call] = listed["items"]
        detail = _wait_archived(base, call["call_id"])
        assert detail["state"] == "ARCHIVED", detail["ai"]
        assert detail["ai"]["transcript"]["text"].strip()
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "callscope_ai_attempts_total" in scraped
