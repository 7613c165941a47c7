"""A throw-away Prometheus server for tests: Debian's `prometheus` binary scraping the given
targets into a folder of the test's, queried over its HTTP API.

Prometheus comes from the system (`apt-get install prometheus`; `.ci/run` installs it). Without
it a test is skipped with that instruction, unless CALLSCOPE_REQUIRE_PROMETHEUS=1 (as in CI)
turns the skip into a failure. Prometheus 2.42 hands its first targets to the scrapers about
5 s after it starts, whatever the scrape interval: start it before the servers it scrapes.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from callscope.answering import wait_answering
from tests.e2e.processes import free_port

_STARTUP_TIMEOUT: Final = 30.0
_STOP_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class ScrapeTarget:
    """One `/metrics` endpoint to scrape; `job` becomes the `job` label of its series."""

    address: str  # host:port
    job: str = "callscope"
    metrics_path: str = "/metrics"
    bearer_token: str | None = None


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer."""

    labels: Mapping[str, str]
    value: float


def single_value(samples: Sequence[Sample]) -> float | None:
    """The value of the only series, or None when the query matched none."""
    if not samples:
        return None
    if len(samples) > 1:
        raise AssertionError(f"expected at most one series, got {samples}")
    return samples[0].value


def prometheus_binary() -> str:
    """Prometheus' executable (CALLSCOPE_PROMETHEUS, else `prometheus` on PATH); skips the
    test when there is none, or fails it under CALLSCOPE_REQUIRE_PROMETHEUS=1."""
    found = os.environ.get("CALLSCOPE_PROMETHEUS") or shutil.which("prometheus")
    if found:
        return found
    message = (
        "Prometheus is not installed: apt-get install prometheus (or set CALLSCOPE_PROMETHEUS)"
    )
    if os.environ.get("CALLSCOPE_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(message)
    pytest.skip(message)


class PrometheusServer:
    """A running Prometheus, asked over its HTTP API (`/api/v1/...`)."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    async def query(self, promql: str) -> list[Sample]:
        """An instant query evaluated now; its series as samples."""
        data = await self._get("/api/v1/query", {"query": promql})
        if data["resultType"] != "vector":
            raise AssertionError(f"{promql!r} is a {data['resultType']}, not an instant vector")
        return [
            Sample(labels=item["metric"], value=float(item["value"][1])) for item in data["result"]
        ]

    async def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[Sample]], bool],
        *,
        within: float = 15.0,
    ) -> list[Sample]:
        """Query until the answer satisfies `predicate` (so until a scrape brought it); the
        TimeoutError's message shows the last answer and how each target's scrapes went."""
        deadline = time.monotonic() + within
        while True:
            samples = await self.query(promql)
            if predicate(samples):
                return samples
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{promql!r} still answers {samples} after {within} s; "
                    f"targets: {await self.target_health()}"
                )
            await asyncio.sleep(0.1)

    async def target_health(self) -> list[str]:
        """Each target's job, address, health and last scrape error, for failure messages."""
        data = await self._get("/api/v1/targets", {"state": "active"})
        return [
            f"{t['labels']['job']} {t['scrapeUrl']} {t['health']} {t['lastError']}".rstrip()
            for t in data["activeTargets"]
        ]

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            response = await http.get(path, params=params)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus answered {response.status_code}: {body}")
        return body["data"]


def scrape_config(targets: Sequence[ScrapeTarget], scrape_interval: float) -> str:
    """prometheus.yml for these targets (JSON, which is YAML too)."""
    interval = f"{round(scrape_interval * 1000)}ms"
    jobs: dict[str, dict[str, Any]] = {}
    for target in targets:
        job: dict[str, Any] = {
            "job_name": target.job,
            "metrics_path": target.metrics_path,
            "static_configs": [{"targets": [target.address]}],
        }
        if target.bearer_token is not None:
            job["authorization"] = {"type": "Bearer", "credentials": target.bearer_token}
        if jobs.setdefault(target.job, job) is not job:
            raise ValueError(f"two targets share the job name {target.job!r}")
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": list(jobs.values()),
    }
    return json.dumps(config, indent=2)


@contextmanager
def prometheus_server(
    targets: Sequence[ScrapeTarget], folder: Path, *, scrape_interval: float = 0.2
) -> Iterator[PrometheusServer]:
    """Run Prometheus scraping `targets` every `scrape_interval` seconds, with its config,
    data and log in `folder`, on a free port of 127.0.0.1; stopped (and waited for) on exit.

    It inherits this process's environment, so the session's leftover check finds it."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(scrape_config(targets, scrape_interval))
    port = free_port()
    log = folder / "prometheus.log"
    command = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT)
        try:
            server = PrometheusServer(f"http://127.0.0.1:{port}", log)
            _wait_ready(server, process)
            yield server
        finally:
            _stop(process)


def _wait_ready(server: PrometheusServer, process: subprocess.Popen[bytes]) -> None:
    wait_answering(
        f"{server.url}/-/ready",
        process,
        name="prometheus",
        log=server.log,
        timeout=_STARTUP_TIMEOUT,
        interval=0.05,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
