"""Run containers of a built callscope image with Debian's Podman (never inside `make test`'s
default run: the image is built beforehand by deploy/image/build.sh).

PODMAN_FLAGS and PODMAN_ULIMITS are those of deploy/image/build.sh (runc with the cgroupfs
manager, and rlimits this kind of machine lets a container set)."""

import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

_FLAGS: Final = "--runtime runc --cgroup-manager cgroupfs"
_ULIMITS: Final = "--ulimit nofile=16384:16384 --ulimit nproc=16384:16384"
_STOP_TIMEOUT_S: Final = 60


def podman() -> list[str]:
    found = shutil.which("podman")
    assert found is not None, "podman is not installed (apt-get install podman runc)"
    return [found, *shlex.split(os.environ.get("PODMAN_FLAGS", _FLAGS))]


def rlimits() -> list[str]:
    """`--ulimit` options every container is run with (PODMAN_ULIMITS)."""
    return shlex.split(os.environ.get("PODMAN_ULIMITS", _ULIMITS))


def _run_args(image: str, env: Mapping[str, str], *, network: str) -> list[str]:
    """What every container gets: the chart's posture (read-only root, /tmp a tmpfs, no
    capabilities, no privilege escalation) and the machine's rlimits."""
    args = [
        *rlimits(),
        f"--network={network}",
        "--read-only",
        "--tmpfs=/tmp",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
    ]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    return [*args, image]


def run_once(
    image: str, command: list[str], env: Mapping[str, str], *, network: str = "host"
) -> subprocess.CompletedProcess[str]:
    """A container that runs `command` to its end (`--entrypoint` first to replace
    `callscope`); its exit status and output."""
    entry = command[:2] if command[:1] == ["--entrypoint"] else []
    rest = command[len(entry) :]
    args = [*podman(), "run", "--rm", *entry, *_run_args(image, env, network=network), *rest]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)


@contextmanager
def container(image: str, command: list[str], env: Mapping[str, str]) -> Iterator[str]:
    """A detached container on the host's network; stopped with SIGTERM at the end, which
    must end it with status 0 within its grace. Yields its name."""
    name = f"callscope-test-{uuid.uuid4().hex[:10]}"
    args = [*podman(), "run", "--detach", "--name", name, *_run_args(image, env, network="host")]
    subprocess.run([*args, *command], check=True, capture_output=True, timeout=120)
    try:
        yield name
        stop = [*podman(), "stop", "--time", str(_STOP_TIMEOUT_S), name]
        subprocess.run(stop, check=True, capture_output=True, timeout=_STOP_TIMEOUT_S + 30)
        status = subprocess.run(
            [*podman(), "inspect", "--format", "{{.State.ExitCode}}", name],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        assert status == "0", f"{command} exited with {status} on SIGTERM:\n{logs(name)}"
    finally:
        subprocess.run(
            [*podman(), "rm", "--force", "--time", "0", name],
            capture_output=True,
            timeout=120,
            check=False,  # already gone is fine
        )


def logs(name: str) -> str:
    done = subprocess.run(
        [*podman(), "logs", name], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout + done.stderr
