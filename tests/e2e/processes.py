"""Start callscope commands as real processes and wait for them to answer."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


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


def _tail(log: Path) -> str:
    """The end of the process's log, for the failure message."""
    return log.read_text()[-3000:] if log.exists() else ""


def wait_ready(
    base_url: str, process: subprocess.Popen[bytes], timeout: float, *, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"callscope exited with {process.returncode} before it was ready:\n" + _tail(log)
            )
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout} s:\n" + _tail(log))
