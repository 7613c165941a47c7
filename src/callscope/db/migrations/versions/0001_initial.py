"""Calls, packets and call events.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = "'IN_PROGRESS', 'COMPLETED', 'PROCESSING_AI', 'ARCHIVED', 'FAILED'"


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_packet_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("packets_received", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("packets_duplicate", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("packets_late", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bytes_received", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("max_sequence", sa.BigInteger(), nullable=True),
        sa.Column("has_sequence_zero", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("final_sequence", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(f"state IN ({_STATES})", name="ck_calls_state_known"),
        sa.PrimaryKeyConstraint("call_id", name="pk_calls"),
    )
    op.create_index(
        "ix_calls_created_at_call_id",
        "calls",
        [sa.text("created_at DESC"), sa.text("call_id DESC")],
    )
    op.create_index("ix_calls_state_last_packet_at", "calls", ["state", "last_packet_at"])

    op.create_table(
        "packets",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.call_id"],
            name="fk_packets_call_id_calls",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", "sequence", name="pk_packets"),
    )

    op.create_table(
        "call_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=True),
        sa.Column("to_state", sa.Text(), nullable=True),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.call_id"],
            name="fk_call_events_call_id_calls",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_call_events"),
    )
    op.create_index("ix_call_events_call_id_id", "call_events", ["call_id", "id"])


def downgrade() -> None:
    op.drop_table("call_events")
    op.drop_table("packets")
    op.drop_table("calls")
