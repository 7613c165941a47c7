"""Bearer-token checks: 401 for missing or unknown, 403 for the wrong role."""

import json
import stat
from pathlib import Path

import pytest

from callscope.auth.bootstrap import ensure_local_tokens
from callscope.auth.tokens import Role, TokenChecker
from callscope.errors import Forbidden, NotAuthenticated

CHECKER = TokenChecker(ingest=["pbx-1", "pbx-2"], supervisor=["sup-1"])


@pytest.mark.parametrize(
    ("header", "role"),
    [
        ("Bearer pbx-1", Role.ingest),
        ("Bearer pbx-2", Role.ingest),
        ("bearer sup-1", Role.supervisor),
    ],
)
def test_right_token_for_the_role_passes(header: str, role: Role) -> None:
    CHECKER.authorize(header, role)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic pbx-1", "pbx-1"])
def test_missing_token_is_not_authenticated(header: str | None) -> None:
    with pytest.raises(NotAuthenticated):
        CHECKER.authorize(header, Role.ingest)


def test_unknown_token_is_not_authenticated() -> None:
    with pytest.raises(NotAuthenticated):
        CHECKER.authorize("Bearer pbx-3", Role.ingest)


def test_token_of_the_other_role_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        CHECKER.authorize("Bearer sup-1", Role.ingest)
    with pytest.raises(Forbidden):
        CHECKER.authorize("Bearer pbx-1", Role.supervisor)


def test_no_tokens_configured_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="no tokens configured"):
        TokenChecker(ingest=[], supervisor=[])


def test_auth_is_off_only_when_disabled_explicitly() -> None:
    TokenChecker(ingest=[], supervisor=[], disabled=True).authorize(None, Role.supervisor)


def test_local_tokens_are_created_once_and_private(tmp_path: Path) -> None:
    first = ensure_local_tokens(tmp_path / "data")
    again = ensure_local_tokens(tmp_path / "data")
    assert first == again
    assert first.ingest != first.supervisor
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert json.loads(first.path.read_text())["ingest"] == first.ingest
