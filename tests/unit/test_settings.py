"""Settings from the environment: prefix, comma-separated tokens, accepted URL schemes."""

import pytest
from pydantic import ValidationError

from callscope.settings import Settings, asyncpg_dsn, sqlalchemy_url


def test_tokens_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLSCOPE_INGEST_TOKENS", "tok-alpha, tok-beta,,tok-gamma")
    monkeypatch.setenv("CALLSCOPE_CALL_IDLE_TIMEOUT", "12.5")
    settings = Settings(_env_file=None)
    assert [t.get_secret_value() for t in settings.ingest_tokens] == [
        "tok-alpha",
        "tok-beta",
        "tok-gamma",
    ]
    assert settings.call_idle_timeout == 12.5
    assert "tok-alpha" not in repr(settings)


def test_defaults_are_safe_for_development() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url is None
    assert not settings.auth_disabled
    assert settings.call_idle_timeout == 30
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+asyncpg://u@h/db"]
)
def test_both_url_forms_are_accepted_and_normalised(url: str) -> None:
    settings = Settings(_env_file=None, database_url=url)
    assert settings.database_url is not None
    assert sqlalchemy_url(settings.database_url) == "postgresql+asyncpg://u@h/db"
    assert asyncpg_dsn(settings.database_url) == "postgresql://u@h/db"


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, database_url="sqlite:///calls.db")


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, ingest_tokenz="x")  # type: ignore[call-arg]
