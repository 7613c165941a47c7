"""Settings: the only place the environment is read (prefix `CALLSCOPE_`, plus a `.env` file)."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_ASYNCPG_SCHEME = "postgresql+asyncpg://"
_PLAIN_SCHEMES = ("postgresql://", "postgres://")

TokenList = Annotated[list[SecretStr], NoDecode]


class Settings(BaseSettings):
    """Every knob of callscope; built once by the CLI (or a test) and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="CALLSCOPE_", env_file=".env", extra="forbid", validate_default=True
    )

    database_url: str | None = Field(
        None,
        description="PostgreSQL URL (postgresql://… or postgresql+asyncpg://…). "
        "Unset: `callscope run` starts an embedded PostgreSQL in the data folder.",
    )
    data_dir: Path = Field(
        Path(".callscope"),
        description="Folder for the embedded database and generated tokens (`callscope run`).",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server binds.")

    ingest_tokens: TokenList = Field(
        default_factory=list,
        description="Comma-separated bearer tokens allowed to post packets and complete calls.",
    )
    supervisor_tokens: TokenList = Field(
        default_factory=list,
        description="Comma-separated bearer tokens allowed to read calls and their history.",
    )
    auth_disabled: bool = Field(
        False, description="Switch bearer-token checks off entirely (local experiments only)."
    )

    max_packet_bytes: int = Field(
        65536, ge=1, description="Largest decoded audio payload of one packet, in bytes."
    )
    call_idle_timeout: float = Field(
        30.0, gt=0, description="Seconds without packets after which a call is completed."
    )
    sweep_interval: float = Field(
        5.0, gt=0, description="Seconds between two runs of the idle-call sweeper."
    )

    ingest_batch_max: int = Field(
        512, ge=1, description="Most packets one group-commit transaction writes."
    )
    ingest_queue_limit: int = Field(
        2048,
        ge=1,
        description="Packets waiting for a commit beyond which ingestion answers 503.",
    )
    ingest_flushers: int = Field(
        2, ge=1, le=16, description="Concurrent group-commit transactions per process."
    )
    db_pool_size: int = Field(10, ge=1, description="Connections for reads and state changes.")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level of log lines written."
    )
    log_json: bool = Field(True, description="JSON log lines (false: human-readable console).")
    access_log: bool = Field(False, description="Log one line per HTTP request.")

    @field_validator("ingest_tokens", "supervisor_tokens", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith((_ASYNCPG_SCHEME, *_PLAIN_SCHEMES)):
            raise ValueError("must start with postgresql:// or postgresql+asyncpg://")
        return value

    @property
    def max_body_bytes(self) -> int:
        """Largest accepted request body: the base64 of the biggest packet plus JSON framing."""
        return (self.max_packet_bytes + 2) // 3 * 4 + 1024

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ValueError("CALLSCOPE_DATABASE_URL is not set")
        return self.database_url


def sqlalchemy_url(url: str) -> str:
    """The URL with SQLAlchemy's asyncpg driver named in the scheme."""
    for scheme in _PLAIN_SCHEMES:
        if url.startswith(scheme):
            return _ASYNCPG_SCHEME + url.removeprefix(scheme)
    return url


def asyncpg_dsn(url: str) -> str:
    """The URL as plain asyncpg understands it."""
    return "postgresql://" + sqlalchemy_url(url).removeprefix(_ASYNCPG_SCHEME)
