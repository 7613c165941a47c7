"""A group committer of a test's own, beside (or instead of) an app's."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from callscope.db.engine import create_ingest_pool
from callscope.ingest.committer import GroupCommitter
from callscope.settings import Settings
from callscope.supervision import Supervisor


@asynccontextmanager
async def own_committer(
    db_url: str,
    settings: Settings,
    *,
    batch_max: int,
    queue_limit: int,
    stream_linger: float = 0.0,
    flushing: bool = True,
) -> AsyncIterator[tuple[GroupCommitter, Callable[[], None]]]:
    """A committer on a one-connection pool, with `settings`' audio format and sequence
    bound, and a function that starts its flusher. With `flushing` it has started already;
    without, packets submitted before the test starts it are flushed as one batch."""
    pool = await create_ingest_pool(db_url, size=1)
    committer = GroupCommitter(
        pool,
        batch_max=batch_max,
        queue_limit=queue_limit,
        default_format=settings.default_audio_format,
        max_jump=settings.max_sequence_jump,
        stream_linger=stream_linger,
    )
    flushers = Supervisor()

    def start_flushing() -> None:
        flushers.start("flusher", committer.flush_forever, cancel_at_stop=True)

    if flushing:
        start_flushing()
    try:
        yield committer, start_flushing
    finally:
        await committer.close()
        await flushers.stop()
        await pool.close()
