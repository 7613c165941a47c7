"""`python -m callscope.cluster` (`make cluster`) as a newcomer runs it: nginx's config passes
`nginx -t`; the cluster serves through the load balancer, spreads requests over its replicas,
its worker archives the calls, and Ctrl-C leaves no process behind."""

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from callscope.cluster import CONNECTIONS_SPARE, ClusterPlan, connections_free
from callscope.cluster_nginx import nginx_config
from tests.cluster import BEARER, INGEST, SUPERVISOR
from tests.e2e.processes import clean_env, free_port
from tests.factories import packet_body
from tests.integration.ai_helpers import wait_for_states

pytestmark = pytest.mark.usefixtures("db")


def test_the_generated_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = ClusterPlan(api_replicas=2, workers=0, env={}, logs=tmp_path).nginx
    config = tmp_path / "nginx.conf"
    error_log = tmp_path / "error.log"
    config.write_text(
        nginx_config(
            host="127.0.0.1",
            port=free_port(),
            upstreams=[free_port(), free_port()],
            folder=tmp_path,
            error_log=error_log,
        )
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(config), "-e", str(error_log)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


async def _read_until(process: asyncio.subprocess.Process, needle: str) -> str:
    """The cluster's output up to the line that contains `needle`."""
    assert process.stdout is not None
    said = ""
    async with asyncio.timeout(90):
        while needle not in said:
            line = await process.stdout.readline()
            assert line, said  # it exited
            said += line.decode()
    return said


@pytest.mark.slow  # nginx and 2-3 callscope processes: 6-9 s on an idle 2-core machine
async def test_the_cluster_serves_through_nginx_and_ctrl_c_leaves_nothing_behind(
    db_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        CALLSCOPE_DATABASE_URL=db_url,
        CALLSCOPE_INGEST_TOKENS=INGEST,
        CALLSCOPE_SUPERVISOR_TOKENS=SUPERVISOR,
        CALLSCOPE_AI_PROVIDER="mock",
        CALLSCOPE_AI_LATENCY_MIN="0",
        CALLSCOPE_AI_LATENCY_MAX="0.01",
        CALLSCOPE_AI_FAILURE_RATE="0",
        CALLSCOPE_ACCESS_LOG="true",
        CALLSCOPE_DATA_DIR=str(tmp_path / "data"),
        CALLSCOPE_API_REPLICAS="2",
    )
    cluster = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callscope.cluster", "--workers", "1", "--port", str(port),
        "--logs", str(tmp_path / "logs"),
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        said = await _read_until(cluster, "Ctrl-C stops everything")
        members = psutil.Process(cluster.pid).children(recursive=True)
        commands = [" ".join(m.cmdline()) for m in members]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=BEARER) as http:
            for n in range(4):
                for sequence in (1, 2, 3):
                    posted = await http.post(f"/v1/call/stream/c-{n}", json=packet_body(sequence))
                    assert posted.status_code == 202
                assert (await http.post(f"/v1/calls/c-{n}/complete")).status_code == 200
        await wait_for_states(db, {"ARCHIVED"}, count=4, within=30)
    finally:
        cluster.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(cluster.communicate(), 60)

    assert cluster.returncode == 0, rest.decode()
    assert "callscope cluster: stopped" in rest.decode()
    assert f"load balancer http://127.0.0.1:{port}" in said
    assert re.search(r"2 API replicas \(api-1 on :\d+, api-2 on :\d+\), 1 worker;", said)
    assert sum(" serve " in c for c in commands) == 2
    assert sum(c.endswith("callscope worker") for c in commands) == 1
    assert any("nginx" in c for c in commands)
    assert [m.pid for m in members if m.is_running() and m.status() != psutil.STATUS_ZOMBIE] == []
    for replica in ("api-1", "api-2"):  # least_conn spread the requests over both
        assert "POST /v1/call/stream/c-" in (tmp_path / "logs" / f"{replica}.log").read_text()


async def test_a_cluster_the_database_cannot_take_is_refused_before_anything_starts(
    db_url: str, tmp_path: Path
) -> None:
    """One replica more than the server has connections for: said at once, with the
    arithmetic and what to do, instead of "too many clients" under load."""
    free = await connections_free(db_url)
    replicas = free // 23 + 1
    env = clean_env(CALLSCOPE_DATABASE_URL=db_url, CALLSCOPE_DATA_DIR=str(tmp_path / "data"))
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "callscope", "cluster", "--api-replicas", str(replicas)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    said = re.search(r"but the server takes (\d+) more", refused.stderr)
    assert said is not None, refused.stderr
    assert (
        f"{replicas} API replicas x 23 + 1 worker x 5 may open {replicas * 23 + 5} database "
        f"connections (and {CONNECTIONS_SPARE} are kept spare)"
    ) in refused.stderr
    assert int(said[1]) < replicas * 23 + 5 + CONNECTIONS_SPARE
    assert "load balancer" not in refused.stdout  # nothing was started
