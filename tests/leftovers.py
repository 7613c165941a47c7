"""Processes a test session leaves behind: every process it starts (and every process those
start, daemons included) inherits a marker in its environment, found again at the end."""

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

MARKER = "PYTEST_CALLSCOPE_SESSION"


@contextmanager
def marked_session() -> Iterator[str]:
    """Mark this process's environment (children inherit it); yields the marker."""
    marker = uuid.uuid4().hex
    os.environ[MARKER] = marker
    try:
        yield marker
    finally:
        del os.environ[MARKER]


def survivors(marker: str, *, grace: float) -> list[str]:
    """Processes other than this one that carry `marker`, after giving them `grace` seconds to
    exit; each is killed, and described for the failure message."""
    deadline = time.monotonic() + grace
    while True:
        alive = _marked(marker)
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    described = []
    for process in alive:
        try:
            described.append(f"{process.pid} {' '.join(process.cmdline())[:200]}")
            process.kill()
        except psutil.Error:
            continue
    return described


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(MARKER) == marker:
                found.append(process)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    return found
