"""ORM rows: calls, their packets, their append-only event history and their AI attempts and
results. Closed sets are typed columns (`EnumText`): rows carry enum members."""

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from callscope.ai.ports import SentimentLabel
from callscope.audio.formats import AudioEncoding
from callscope.calls.states import CallState
from callscope.calls.vocabulary import AiStep, AttemptOutcome, EventType, Track
from callscope.db.base import Base
from callscope.db.types import EnumText
from callscope.ingest.packets import CallCounts

_STATES = ", ".join(f"'{state}'" for state in CallState)
_TRACK_KNOWN = "track IN (" + ", ".join(f"'{track}'" for track in Track) + ")"
# Calls whose audio retention may drop (or has started to): ended, and their packets still
# there. The predicate of `ix_calls_audio_prunable`; queries repeat it to use that index.
AUDIO_PRUNABLE: Final = (
    f"state IN ('{CallState.ARCHIVED}', '{CallState.FAILED}') "
    "AND (audio_pruned_at IS NULL OR audio_prune_pending)"
)


class CallRow(Base):
    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state_known"),
        CheckConstraint(
            "(encoding = 'mulaw' AND sample_rate = 8000) "
            "OR (encoding = 'pcm_s16le' AND sample_rate IN (8000, 16000))",
            name="format_known",
        ),
        Index("ix_calls_created_at_call_id", text("created_at DESC"), text("call_id DESC")),
        Index("ix_calls_state_call_id", "state", "call_id"),
        Index(
            "ix_calls_audio_prunable",
            "updated_at",
            "call_id",
            postgresql_where=text(AUDIO_PRUNABLE),
        ),
    )

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[CallState] = mapped_column(EnumText(CallState), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ai_epoch: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    ai_last_error: Mapped[str | None] = mapped_column(Text)
    ai_run: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the job run that owns the call
    encoding: Mapped[AudioEncoding] = mapped_column(
        EnumText(AudioEncoding), nullable=False, server_default="mulaw"
    )
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False, server_default="8000")
    call_metadata: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # Retention (see `callscope.retention`): when its packets started to be deleted, and
    # whether some are still left to delete.
    audio_pruned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audio_prune_pending: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )


class CallTrackRow(Base):
    """One side of a call and its order-independent packet counters (see `CallCounts`)."""

    __tablename__ = "call_tracks"
    __table_args__ = (CheckConstraint(_TRACK_KNOWN, name="track_known"),)

    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    )
    track: Mapped[Track] = mapped_column(EnumText(Track), primary_key=True)
    packets_received: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    packets_duplicate: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    packets_late: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    bytes_received: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    max_sequence: Mapped[int | None] = mapped_column(BigInteger)
    has_sequence_zero: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    final_sequence: Mapped[int | None] = mapped_column(BigInteger)
    last_packet_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    @property
    def counts(self) -> CallCounts:
        return CallCounts(
            received=self.packets_received,
            has_sequence_zero=self.has_sequence_zero,
            max_sequence=self.max_sequence,
            final_sequence=self.final_sequence,
        )


class PacketRow(Base):
    """One stored packet. No foreign key to `calls` (see migration 0006): the ingest batch
    creates and locks the call first, and a per-row check cost a third of its time."""

    __tablename__ = "packets"
    __table_args__ = (CheckConstraint(_TRACK_KNOWN, name="track_known"),)

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    track: Mapped[Track] = mapped_column(EnumText(Track), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sent_at: Mapped[float] = mapped_column(Double, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CallEventRow(Base):
    __tablename__ = "call_events"
    __table_args__ = (
        PrimaryKeyConstraint("call_id", "id"),  # keyed by call: see migration 0009
        Index("ix_call_events_id", "id"),
        Index("ix_call_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE")
    )
    type: Mapped[EventType] = mapped_column(EnumText(EventType), nullable=False)
    from_state: Mapped[CallState | None] = mapped_column(EnumText(CallState))
    to_state: Mapped[CallState | None] = mapped_column(EnumText(CallState))
    data: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AiAttemptRow(Base):
    """One provider call for one step of one track of a call; `epoch` counts operator
    re-drives."""

    __tablename__ = "ai_attempts"
    __table_args__ = (
        PrimaryKeyConstraint("call_id", "id"),  # keyed by call: see migration 0009
        UniqueConstraint("call_id", "epoch", "attempt"),
        CheckConstraint(_TRACK_KNOWN, name="track_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE")
    )
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[AiStep] = mapped_column(EnumText(AiStep), nullable=False)
    track: Mapped[Track] = mapped_column(EnumText(Track), nullable=False)
    # NULL while the attempt runs
    outcome: Mapped[AttemptOutcome | None] = mapped_column(EnumText(AttemptOutcome))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    duration_s: Mapped[float | None] = mapped_column(Double)


class TranscriptRow(Base):
    """The transcript of one track of a call."""

    __tablename__ = "transcripts"
    __table_args__ = (
        CheckConstraint(_TRACK_KNOWN, name="track_known"),
        # What `q` searches in the call list (calls/repository.py, TRANSCRIPT_DOCUMENT).
        Index(
            "ix_transcripts_text_search",
            text("to_tsvector('english'::regconfig, text)"),
            postgresql_using="gin",
        ),
    )

    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    )
    track: Mapped[Track] = mapped_column(EnumText(Track), primary_key=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class SentimentRow(Base):
    """The sentiment of one track (speaker) of a call."""

    __tablename__ = "sentiments"
    __table_args__ = (
        CheckConstraint("score BETWEEN -1 AND 1", name="score_range"),
        CheckConstraint("label IN ('positive', 'neutral', 'negative')", name="label_known"),
        CheckConstraint(_TRACK_KNOWN, name="track_known"),
    )

    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    )
    track: Mapped[Track] = mapped_column(EnumText(Track), primary_key=True)
    label: Mapped[SentimentLabel] = mapped_column(EnumText(SentimentLabel), nullable=False)
    score: Mapped[float] = mapped_column(Double, nullable=False)
    trend: Mapped[list[float]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )  # the score of each transcript segment
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
