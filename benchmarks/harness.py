"""What the asynchronous benchmarks share: a throw-away database, waiting for a server to be
ready, and one run of the steady HTTP load (`benchmarks.steady_load`)."""

import argparse
import asyncio
import json
import os
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from tests.database import admin_url, database_url

from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import upgrade_to_head_async

_REPOSITORY = Path(__file__).parent.parent


async def bench_database(stack: AsyncExitStack, label: str) -> str:
    """A new database at head on CALLSCOPE_DATABASE_URL's server (else the one the tests
    use), dropped when `stack` closes; its URL."""
    admin = os.environ.get("CALLSCOPE_DATABASE_URL") or stack.enter_context(admin_url())
    name = f"callscope_bench_{label}_{uuid.uuid4().hex[:8]}"
    await ensure_database(admin, name)
    stack.push_async_callback(drop_database, admin, name)
    url = database_url(admin, name)
    await upgrade_to_head_async(url)
    return url


async def wait_ready(base: str) -> None:
    """Until `GET {base}/readyz` answers 200 (at most a minute)."""
    async with httpx.AsyncClient(base_url=base, timeout=1) as client:
        for _ in range(300):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(base)


async def steady_load(port: int, args: argparse.Namespace, *, token: str) -> dict[str, Any]:
    """One steady load to its end (`args`: rate, duration, calls, packets_per_call); its
    LOAD_RESULT."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.steady_load", "--port", str(port),
        "--token", token, "--rate", str(args.rate), "--duration", str(args.duration),
        "--calls", str(args.calls), "--packets-per-call", str(args.packets_per_call),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(_REPOSITORY)},
    )  # fmt: skip
    out, _ = await process.communicate()
    line = next(x for x in out.decode().splitlines() if x.startswith("LOAD_RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("LOAD_RESULT "))
    return result
