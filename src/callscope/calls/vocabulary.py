"""The closed sets stored with a call besides its state: tracks, event types, AI steps and
attempt outcomes. The database holds their values; code names them only through these enums.
Pure."""

from enum import StrEnum
from typing import Final


class Track(StrEnum):
    """One side of a call: its own sequence numbers, counters, audio and transcript."""

    inbound = "inbound"  # the caller (towards the carrier); every HTTP packet
    outbound = "outbound"  # the agent (or bot) the caller hears


class Speaker(StrEnum):
    """Who speaks on a track, as transcripts and sentiment name them."""

    caller = "caller"
    agent = "agent"


SPEAKER_OF: Final = {Track.inbound: Speaker.caller, Track.outbound: Speaker.agent}


class EventType(StrEnum):
    """`call_events.type`: what happened to a call."""

    created = "call.created"
    state_changed = "call.state_changed"
    ai_attempt = "call.ai_attempt"
    archived = "call.archived"
    failed = "call.failed"
    dtmf = "call.dtmf"  # a key the caller pressed (media streams)
    mark = "call.mark"  # a marker the carrier reports in the stream (media streams)


class AiStep(StrEnum):
    """`ai_attempts.step`: which provider call an attempt was."""

    transcribe = "transcribe"
    sentiment = "sentiment"


class AttemptOutcome(StrEnum):
    """`ai_attempts.outcome` (NULL while the attempt runs)."""

    ok = "ok"
    failed = "failed"  # retryable: the provider was unavailable
    rejected = "rejected"  # permanent: the provider refused the input
    abandoned = "abandoned"  # the worker stopped during the attempt
