"""ServiceError hierarchy: stable codes and HTTP statuses, raised below the edge."""

from typing import Any, ClassVar


class ServiceError(Exception):
    """An error with a stable code and HTTP status; raised below the edge, rendered at it."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    headers: tuple[tuple[str, str], ...] = ()  # per class, or per error (RangeNotSatisfiable)

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class CallNotFound(ServiceError):
    code = "call_not_found"
    status = 404


class TrackNotFound(ServiceError):
    code = "track_not_found"
    status = 404


class InvalidTransition(ServiceError):
    code = "invalid_state_transition"
    status = 409


class CallNotAcceptingPackets(ServiceError):
    code = "call_not_accepting_packets"
    status = 409


class PacketConflict(ServiceError):
    code = "packet_conflict"
    status = 409


class PacketSizeInvalid(ServiceError):
    """Valid on its own, but not whole samples of the format its call declared."""

    code = "packet_size_invalid"
    status = 409


class SequenceOutOfRange(ServiceError):
    """A sequence further ahead of its track's highest (0 for a new one) than
    CALLSCOPE_MAX_SEQUENCE_JUMP: nothing was stored."""

    code = "sequence_out_of_range"
    status = 422


class AudioFormatInvalid(ServiceError):
    code = "audio_format_invalid"
    status = 422


class CallAudioTooLong(ServiceError):
    """The call's sequences claim more audio than one file may hold."""

    code = "call_audio_too_long"
    status = 409


class AudioPruned(ServiceError):
    """The call's packets were dropped by the audio retention (CALLSCOPE_RETAIN_AUDIO_DAYS)."""

    code = "audio_pruned"
    status = 410


class RangeNotSatisfiable(ServiceError):
    """A byte range that starts past the end of the file; says the file's size."""

    code = "range_not_satisfiable"
    status = 416

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail, size=size)
        self.headers = (("Content-Range", f"bytes */{size}"),)


class CallFormatConflict(ServiceError):
    code = "call_format_conflict"
    status = 409


class InvalidCursor(ServiceError):
    code = "invalid_cursor"
    status = 422


class IngestOverloaded(ServiceError):
    code = "ingest_overloaded"
    status = 503
    headers = (("Retry-After", "1"),)


class ShuttingDown(ServiceError):
    """A WebSocket upgrade to a replica that has closed its sockets for a shutdown: a load
    balancer that retries 503s sends it to another replica."""

    code = "shutting_down"
    status = 503
    headers = (("Retry-After", "1"),)


class StorageUnavailable(ServiceError):
    code = "storage_unavailable"
    status = 503
    headers = (("Retry-After", "1"),)


class NotAuthenticated(ServiceError):
    code = "not_authenticated"
    status = 401
    headers = (("WWW-Authenticate", "Bearer"),)


class Forbidden(ServiceError):
    code = "forbidden"
    status = 403


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    status = 415


class PacketTooLarge(ServiceError):
    code = "packet_too_large"
    status = 413


class RequestInvalid(ServiceError):
    code = "validation_error"
    status = 422


class MalformedJson(ServiceError):
    code = "malformed_json"
    status = 400
