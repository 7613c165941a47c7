"""First-start tokens for `callscope run`: generated once, kept in the data folder."""

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

TOKENS_FILE = "tokens.json"


@dataclass(frozen=True, slots=True)
class LocalTokens:
    ingest: str
    supervisor: str
    path: Path


def ensure_local_tokens(data_dir: Path) -> LocalTokens:
    """Read the tokens kept in `data_dir`, creating them (mode 0600) on the first start."""
    path = data_dir / TOKENS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = {"ingest": secrets.token_urlsafe(32), "supervisor": secrets.token_urlsafe(32)}
        path.touch(mode=0o600)
        path.write_text(json.dumps(fresh, indent=2) + "\n")
    return _read(path)


def read_local_tokens(data_dir: Path) -> LocalTokens | None:
    """The tokens a `callscope run` keeps in `data_dir`, if it has made them."""
    path = data_dir / TOKENS_FILE
    return _read(path) if path.exists() else None


def _read(path: Path) -> LocalTokens:
    stored = json.loads(path.read_text())
    return LocalTokens(ingest=stored["ingest"], supervisor=stored["supervisor"], path=path)
