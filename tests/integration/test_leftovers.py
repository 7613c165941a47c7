"""The session's leftover check finds a process a test started and forgot, even a daemon that
left its parent, and kills it."""

import os
import subprocess
import sys

from tests.leftovers import MARKER, survivors


def test_a_forgotten_daemon_is_found_and_killed() -> None:
    marker = "forgotten-" + os.urandom(4).hex()
    env = {**os.environ, MARKER: marker}
    # A grandchild that outlives its parent, as `pg_ctl start` leaves the server.
    spawn = (
        "import subprocess, sys; subprocess.Popen("
        "[sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)"
    )
    subprocess.run([sys.executable, "-c", spawn], env=env, check=True)
    left = survivors(marker, grace=0.5)
    assert len(left) == 1, left
    assert "time.sleep(60)" in left[0]
    assert survivors(marker, grace=5) == []  # gone once the kill has landed
