"""Start callscope commands as real processes and wait for them to answer."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from callscope.answering import wait_answering


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any CALLSCOPE_ variable, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")}
    return {**env, **settings}


@contextmanager
def callscope_process(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    log: Path,
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m callscope ARGS`; on exit send `stop_signal` (SIGINT is Ctrl-C) and
    require a clean stop. Without a CALLSCOPE_DRAIN_SECONDS of its own, the process does not
    wait for load balancers on SIGTERM (there are none)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "callscope", *args],
            env={"CALLSCOPE_DRAIN_SECONDS": "0", **env},
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(stop_signal)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise


def wait_ready(
    base_url: str, process: subprocess.Popen[bytes], timeout: float, *, log: Path
) -> None:
    wait_answering(f"{base_url}/readyz", process, name="callscope", log=log, timeout=timeout)


def simulate_speech(
    url: str, *, transport: str, calls: int, ingest: str, supervisor: str, cwd: Path
) -> None:
    """`callscope simulate` of recorded calls at full speed; it must exit 0 (every call's
    missing count as planned)."""
    simulated = subprocess.run(
        [
            *(sys.executable, "-m", "callscope", "simulate", "--url", url, "--calls", str(calls)),
            *("--speech", "--speed", "0", "--transport", transport),
            *("--token", ingest, "--supervisor-token", supervisor),
        ],
        env=clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
