"""`server.once`: a cleanup that both the forced exit's thread and the main thread may call
runs once, and neither returns before it has run."""

import threading
import time

from callscope.server import once


def test_a_cleanup_called_from_two_threads_runs_once_and_both_wait_for_it() -> None:
    runs: list[float] = []

    def slow_cleanup() -> None:
        time.sleep(0.05)
        runs.append(time.monotonic())

    cleanup = once(slow_cleanup)
    returned: list[float] = []

    def call() -> None:
        cleanup()
        returned.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(runs) == 1
    assert len(returned) == 2
    assert min(returned) >= runs[0]  # the second caller waited for the first one's run
