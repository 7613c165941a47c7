"""Waiting for a process just started to answer over HTTP (the cluster's members; the
tests' and benchmarks' servers)."""

import subprocess
import time
from pathlib import Path

import httpx

_LOG_TAIL_CHARS = 3000


def wait_answering(
    url: str,
    process: "subprocess.Popen[bytes]",
    *,
    name: str,
    log: Path,
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Until GET `url` answers 200. Raises RuntimeError when `process` exits first and
    TimeoutError when `timeout` seconds pass, each with the end of `log`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode} before it was ready:\n{_tail(log)}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == httpx.codes.OK:
                return
        except httpx.TransportError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-_LOG_TAIL_CHARS:] if log.exists() else ""
