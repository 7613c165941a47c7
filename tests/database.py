"""The server the tests use when CALLSCOPE_TEST_DATABASE_URL is unset: local, else embedded."""

import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def admin_url() -> Iterator[str]:
    """The URL of a maintenance database on the server the tests will use."""
    if _local_server_answers():
        yield LOCAL_SERVER_URL
    else:
        from callscope.db.embedded import server_url, start_embedded  # noqa: PLC0415

        with tempfile.TemporaryDirectory(prefix="callscope-test-pg-") as folder:
            server = start_embedded(Path(folder) / "pgdata", delete_on_exit=True)
            try:
                yield server_url(server, "postgres")
            finally:
                server.cleanup()  # stop it before its folder goes


def database_url(admin: str, name: str) -> str:
    """The admin URL with its database swapped for `name` (query parameters kept)."""
    base, _, query = admin.partition("?")
    server, _, _ = base.rpartition("/")
    return f"{server}/{name}" + (f"?{query}" if query else "")


def fresh_database_name() -> str:
    return f"callscope_test_{uuid.uuid4().hex[:12]}"
