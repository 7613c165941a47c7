"""ORM rows: calls, their packets and their append-only event history."""

import uuid
from datetime import datetime
from typing import Any

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
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from callscope.calls.states import CallState
from callscope.db.base import Base

_STATES = ", ".join(f"'{state}'" for state in CallState)


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
        Index("ix_calls_state_last_packet_at", "state", "last_packet_at"),
    )

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    last_packet_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    packets_received: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    packets_duplicate: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    packets_late: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    bytes_received: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    max_sequence: Mapped[int | None] = mapped_column(BigInteger)
    has_sequence_zero: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    final_sequence: Mapped[int | None] = mapped_column(BigInteger)
    ai_epoch: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    ai_last_error: Mapped[str | None] = mapped_column(Text)
    ai_run: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the job run that owns the call
    encoding: Mapped[str] = mapped_column(Text, nullable=False, server_default="mulaw")
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False, server_default="8000")
    call_metadata: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )


class PacketRow(Base):
    __tablename__ = "packets"

    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sent_at: Mapped[float] = mapped_column(Double, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CallEventRow(Base):
    __tablename__ = "call_events"
    __table_args__ = (Index("ix_call_events_call_id_id", "call_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(Text, nullable=False)
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AiAttemptRow(Base):
    """One provider call for one step of one call; `epoch` counts operator re-drives."""

    __tablename__ = "ai_attempts"
    __table_args__ = (UniqueConstraint("call_id", "epoch", "attempt"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), nullable=False
    )
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str | None] = mapped_column(Text)  # NULL while running
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    duration_s: Mapped[float | None] = mapped_column(Double)


class TranscriptRow(Base):
    __tablename__ = "transcripts"

    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text, nullable=False)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class SentimentRow(Base):
    __tablename__ = "sentiments"
    __table_args__ = (
        CheckConstraint("score BETWEEN -1 AND 1", name="score_range"),
        CheckConstraint("label IN ('positive', 'neutral', 'negative')", name="label_known"),
    )

    call_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("calls.call_id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(Text, nullable=False)
    score: Mapped[float] = mapped_column(Double, nullable=False)
    trend: Mapped[list[float]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )  # the score of each transcript segment
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
