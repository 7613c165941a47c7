"""Both sides of a call: packets, counters, transcripts and sentiments per track.

A call has up to two tracks, `inbound` (the caller) and `outbound` (the agent); HTTP packets
are inbound. Packet counters and `last_packet_at` move from `calls` to `call_tracks` (one row
per call and track, created by its first packet): an ingest batch then rewrites only the
small track rows it counts on, never the call row (whose versions piled up by the hundred
under media streams). `packets`, `transcripts`, `sentiments` and `ai_attempts` gain a `track`.
Existing data becomes the inbound track.

`packets` loses its foreign key to `calls`: the ingest transaction creates and locks a call
before it writes the call's packets, and the per-row check cost about 40 µs of PostgreSQL CPU
per packet, a third of a batch's execution.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRACKS = "track IN ('inbound', 'outbound')"
_COUNTERS = (
    "packets_received",
    "packets_duplicate",
    "packets_late",
    "bytes_received",
    "max_sequence",
    "has_sequence_zero",
    "final_sequence",
)


def upgrade() -> None:
    op.create_table(
        "call_tracks",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("track", sa.Text(), nullable=False),
        sa.Column("packets_received", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("packets_duplicate", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("packets_late", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bytes_received", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("max_sequence", sa.BigInteger(), nullable=True),
        sa.Column("has_sequence_zero", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("final_sequence", sa.BigInteger(), nullable=True),
        sa.Column(
            "last_packet_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(_TRACKS, name="ck_call_tracks_track_known"),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.call_id"], name="fk_call_tracks_call_id_calls", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", "track", name="pk_call_tracks"),
    )
    op.execute(
        f"INSERT INTO call_tracks (call_id, track, {', '.join(_COUNTERS)}, last_packet_at) "
        f"SELECT call_id, 'inbound', {', '.join(_COUNTERS)}, last_packet_at FROM calls "
        "WHERE packets_received > 0 OR packets_duplicate > 0 OR final_sequence IS NOT NULL"
    )
    op.drop_index("ix_calls_state_last_packet_at", "calls")
    for column in (*_COUNTERS, "last_packet_at"):
        op.drop_column("calls", column)
    op.create_index("ix_calls_state_call_id", "calls", ["state", "call_id"])

    for table in ("packets", "transcripts", "sentiments", "ai_attempts"):
        op.add_column(
            table, sa.Column("track", sa.Text(), server_default="inbound", nullable=False)
        )
        op.alter_column(table, "track", server_default=None)
        op.create_check_constraint(f"ck_{table}_track_known", table, _TRACKS)
    op.drop_constraint("pk_packets", "packets", type_="primary")
    op.create_primary_key("pk_packets", "packets", ["call_id", "track", "sequence"])
    op.drop_constraint("fk_packets_call_id_calls", "packets", type_="foreignkey")
    for table in ("transcripts", "sentiments"):
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["call_id", "track"])


def downgrade() -> None:
    """Back to one track: the outbound track's data is dropped."""
    for table in ("transcripts", "sentiments", "packets"):
        op.execute(f"DELETE FROM {table} WHERE track = 'outbound'")
    for table in ("transcripts", "sentiments"):
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["call_id"])
    op.drop_constraint("pk_packets", "packets", type_="primary")
    op.create_primary_key("pk_packets", "packets", ["call_id", "sequence"])
    op.create_foreign_key(
        "fk_packets_call_id_calls", "packets", "calls", ["call_id"], ["call_id"], ondelete="CASCADE"
    )
    for table in ("packets", "transcripts", "sentiments", "ai_attempts"):
        op.drop_constraint(f"ck_{table}_track_known", table, type_="check")
        op.drop_column(table, "track")

    op.add_column(
        "calls", sa.Column("packets_received", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "calls", sa.Column("packets_duplicate", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "calls", sa.Column("packets_late", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column(
        "calls", sa.Column("bytes_received", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("calls", sa.Column("max_sequence", sa.BigInteger(), nullable=True))
    op.add_column(
        "calls",
        sa.Column("has_sequence_zero", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("calls", sa.Column("final_sequence", sa.BigInteger(), nullable=True))
    op.add_column(
        "calls",
        sa.Column(
            "last_packet_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
    )
    op.drop_index("ix_calls_state_call_id", "calls")
    op.create_index("ix_calls_state_last_packet_at", "calls", ["state", "last_packet_at"])
    moved = (*_COUNTERS, "last_packet_at")
    op.execute(
        f"UPDATE calls AS c SET ({', '.join(moved)}) = "
        f"(SELECT {', '.join('t.' + column for column in moved)} FROM call_tracks AS t "
        "WHERE t.call_id = c.call_id AND t.track = 'inbound') "
        "WHERE EXISTS (SELECT 1 FROM call_tracks AS t "
        "WHERE t.call_id = c.call_id AND t.track = 'inbound')"
    )
    op.drop_table("call_tracks")
