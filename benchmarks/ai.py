"""AI orchestration benchmark: 200 completed calls, one worker process, the brief's provider
(1-3 s per call, 25 % failures). Prints the time until every call is ARCHIVED (or FAILED)
and the attempts per call, against what one-at-a-time processing would take.

    .venv/bin/python -m benchmarks.ai [--calls 200]
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
from tests.database import admin_url, database_url
from tests.e2e.processes import clean_env
from tests.factories import make_settings, running_app
from tests.integration.ai_helpers import make_completed_calls

from callscope.db.admin import drop_database, ensure_database
from callscope.db.migrate import upgrade_to_head_async
from callscope.settings import asyncpg_dsn


async def _bench(calls: int) -> None:
    async with AsyncExitStack() as stack:
        configured = os.environ.get("CALLSCOPE_DATABASE_URL")
        admin = configured or stack.enter_context(admin_url())
        name = f"callscope_bench_ai_{uuid.uuid4().hex[:8]}"
        await ensure_database(admin, name)
        url = database_url(admin, name)
        await upgrade_to_head_async(url)
        db = await asyncpg.connect(asyncpg_dsn(url))
        stack.push_async_callback(drop_database, admin, name)
        stack.push_async_callback(db.close)
        async with running_app(make_settings(url)) as client:
            await make_completed_calls(client, [f"bench-{n:04d}" for n in range(calls)])
        log = Path(tempfile.gettempdir()) / "callscope-bench-ai-worker.log"
        env = clean_env(CALLSCOPE_DATABASE_URL=url, CALLSCOPE_LOG_LEVEL="WARNING")
        started = time.monotonic()
        with log.open("wb") as out:
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callscope", "worker", env=env, stdout=out, stderr=out
            )
            try:
                settled = 0
                while settled < calls:
                    await asyncio.sleep(0.25)
                    settled = await db.fetchval(
                        "SELECT count(*) FROM calls WHERE state IN ('ARCHIVED', 'FAILED')"
                    )
                elapsed = time.monotonic() - started
            finally:
                worker.terminate()
                await asyncio.wait_for(worker.wait(), timeout=60)
        await _report(db, calls, elapsed)


async def _report(db: asyncpg.Connection, calls: int, elapsed: float) -> None:
    rows = await db.fetch("SELECT state, count(*) AS n FROM calls GROUP BY state")
    states = {row["state"]: row["n"] for row in rows}
    per_call = await db.fetch("SELECT count(*) AS n FROM ai_attempts GROUP BY call_id")
    attempts = [row["n"] for row in per_call]
    durations = [r["d"] for r in await db.fetch("SELECT duration_s AS d FROM ai_attempts")]
    serial = sum(d for d in durations if d is not None)
    print(f"calls: {calls}; settled: {states}")
    print(f"time until all settled: {elapsed:.1f} s (one worker, default concurrency)")
    print(f"provider time if done one at a time: {serial:.1f} s ({serial / elapsed:.1f}x wall)")
    print(
        f"attempts per call: mean {sum(attempts) / len(attempts):.2f}, "
        f"distribution {dict(sorted(Counter(attempts).items()))}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    asyncio.run(_bench(parser.parse_args().calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
