"""deploy/compose.yaml run for real with Podman and podman-compose: PostgreSQL, migrate, two
API replicas and two workers, nginx and Prometheus, with Debian-built stand-ins for the three
Docker Hub images (deploy/compose.stand-ins.yaml). Calls streamed and posted through nginx
are transcribed to ARCHIVED, both API replicas take packets, Prometheus scrapes every
process, and a stop drains every callscope container to exit status 0.

Debian's Podman is 4.3: its healthchecks run from systemd timers (none here), `podman wait
--condition=healthy` came in 4.6, and its `--requires` cannot start a chain of dependencies
("depends on container … not found in input list"). So the test waits for the `depends_on`
conditions itself and starts the services in their order, each with `up --no-deps`:
PostgreSQL until it accepts connections, `migrate` until it exits 0, then the API replicas
and workers, then nginx and Prometheus.

Opt-in, because the images take minutes to build (and this test about a minute): `make
containers` builds both and runs it with the image's tests, or

    deploy/image/build.sh && deploy/image/stand-ins/build.sh
    export CALLSCOPE_IMAGE=localhost/callscope:dev
    export STAND_INS_IMAGE=localhost/callscope-stand-ins:bookworm
    .venv/bin/python -m pytest tests/deploy/test_compose_stack.py

podman-compose runs Podman with PODMAN_FLAGS and PODMAN_ULIMITS, as tests/deploy/podman.py
does (runc with the cgroupfs manager, rlimits a container may set; see deploy/image/build.sh).
"""

import os
import secrets
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import pytest

from tests.deploy.podman import podman, rlimits
from tests.deploy.tools import DEPLOY, REPO, venv_tool
from tests.e2e.processes import simulate_speech

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("CALLSCOPE_IMAGE") and os.environ.get("STAND_INS_IMAGE")),
        reason="opt-in: build both images (deploy/image/build.sh, deploy/image/stand-ins/"
        "build.sh), then set CALLSCOPE_IMAGE and STAND_INS_IMAGE",
    ),
]

NGINX: Final = "http://127.0.0.1:8080"
PROMETHEUS: Final = "http://127.0.0.1:9090"
CALLSCOPE_SERVICES: Final = ("api", "worker")
T = TypeVar("T")


class Stack:
    """One compose project: podman-compose with the stand-ins, under a project name of its own."""

    def __init__(self, directory: Path) -> None:
        self.project = f"callscope-test-{secrets.token_hex(4)}"
        self.ingest = secrets.token_hex(16)
        self.supervisor = secrets.token_hex(16)
        env_file = directory / "compose.env"
        env_file.write_text(
            f"CALLSCOPE_INGEST_TOKENS={self.ingest}\n"
            f"CALLSCOPE_SUPERVISOR_TOKENS={self.supervisor}\n"
            f"POSTGRES_PASSWORD={secrets.token_hex(16)}\n"
        )
        executable, *flags = podman()
        self.command = [
            venv_tool("podman-compose"),
            *("--podman-path", executable, "--podman-args", shlex.join(flags)),
            *("--podman-run-args", shlex.join(rlimits())),
            *("--env-file", str(env_file), "-p", self.project),
            *("-f", str(DEPLOY / "compose.yaml"), "-f", str(DEPLOY / "compose.stand-ins.yaml")),
        ]

    def up(self, *services: str) -> None:
        started = self.run("up", "--detach", "--no-deps", *services)
        assert started.returncode == 0, started.stdout + started.stderr

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def podman(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [*podman(), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )
        return done.stdout if done.returncode == 0 else ""

    def container_of(self, service: str) -> str:
        [name] = [name for name, each in self.containers().items() if each == service]
        return name

    def exit_code(self, name: str) -> str:
        """The container's exit status; "" while it runs."""
        state = self.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        status, code = state.split()
        return code if status == "exited" else ""

    def containers(self) -> dict[str, str]:
        """Each of the project's containers by name, with its service."""
        listed = self.podman(
            "ps", "--all", "--filter", f"label=io.podman.compose.project={self.project}",
            "--format", '{{.Names}} {{index .Labels "io.podman.compose.service"}}',
        )  # fmt: skip
        return dict(line.split() for line in listed.splitlines())

    def logs(self) -> str:
        """The last lines each container wrote, stdout and stderr, for a failure's message."""
        return "\n".join(f"--- {name}\n{self._tail(name)}" for name in self.containers())

    def _tail(self, name: str) -> str:
        done = subprocess.run(
            [*podman(), "logs", "--tail", "30", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    for port in (8080, 9090):
        assert _port_is_free(port), f"port {port} is taken: the compose file publishes it"
    running = Stack(tmp_path)
    try:
        _start_in_order(running)
        yield running
    finally:
        running.run("down", "--volumes", "--timeout", "60")


def _wait(what: str, check: Callable[[], T], stack: Stack, timeout: float) -> T:
    """`check()` once a second until it answers something true (an HTTP error: not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found: T | None = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout} s\n{stack.logs()}")


def _start_in_order(stack: Stack) -> None:
    """What `depends_on` asks for, waited for here (see the module's docstring)."""
    stack.up("postgres")
    postgres = stack.container_of("postgres")
    # Over TCP: the entrypoint's first, socket-only server (initdb's) is not the real one.
    ready = ("exec", postgres, "pg_isready", "--host=127.0.0.1", "--username=callscope")
    _wait("PostgreSQL accepting connections", lambda: stack.podman(*ready, check=False), stack, 60)
    stack.up("migrate")
    migrate = stack.container_of("migrate")
    migrated = _wait("migrate to exit", lambda: stack.exit_code(migrate), stack, timeout=120)
    assert migrated == "0", stack.logs()
    stack.up("api", "worker")
    stack.up("nginx", "prometheus")


def _prometheus(query: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=5)
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_the_stack_serves_transcribes_scrapes_and_drains(stack: Stack, tmp_path: Path) -> None:
    containers = stack.containers()
    replicas = sorted(service for service in containers.values() if service in CALLSCOPE_SERVICES)
    assert replicas == ["api", "api", "worker", "worker"], containers

    ready = _wait(
        "/readyz through nginx",
        lambda: httpx.get(f"{NGINX}/readyz", timeout=3).status_code == 200,
        stack,
        timeout=180,
    )
    assert ready
    tokens = {"ingest": stack.ingest, "supervisor": stack.supervisor}
    simulate_speech(NGINX, transport="stream", calls=2, cwd=tmp_path, **tokens)  # WebSockets
    simulate_speech(NGINX, transport="http", calls=1, cwd=tmp_path, **tokens)

    supervisor = {"Authorization": f"Bearer {stack.supervisor}"}

    def all_settled() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = httpx.get(
            f"{NGINX}/v1/calls", headers=supervisor, timeout=5
        ).json()["items"]
        settled = all(item["state"] in ("ARCHIVED", "FAILED") for item in items)
        return items if len(items) == 3 and settled else []

    calls = _wait("three calls settled", all_settled, stack, timeout=180)
    for call in calls:
        detail = httpx.get(f"{NGINX}/v1/calls/{call['call_id']}", headers=supervisor, timeout=5)
        assert detail.json()["state"] == "ARCHIVED", detail.json()["ai"]
        assert detail.json()["ai"]["transcript"]["text"].strip()

    def every_process_scraped() -> list[dict[str, Any]]:
        up = _prometheus('up{job=~"callscope-.*"} == 1')
        return up if len(up) == 4 else []  # two APIs, two workers

    _wait("Prometheus scraping 2 APIs and 2 workers", every_process_scraped, stack, timeout=90)

    def both_apis_took_packets() -> list[dict[str, Any]]:
        took = _prometheus(
            'sum by (instance) (callscope_ingest_packets_total{path="http",outcome="accepted"}) > 0'
        )
        return took if len(took) == 2 else []

    _wait("accepted packets on both API replicas", both_apis_took_packets, stack, timeout=60)

    stopped = stack.run("stop", "--timeout", "60")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for name, service in stack.containers().items():
        if service in CALLSCOPE_SERVICES:
            status = stack.podman("inspect", "--format", "{{.State.ExitCode}}", name).strip()
            assert status == "0", f"{name} exited with {status} when stopped\n{stack.logs()}"
