"""Retention: calls remember that their audio was dropped, and what is old is found by index.

- `calls.audio_pruned_at`: when the call's packets started to be deleted (its audio answers
  410 from then on). `calls.audio_prune_pending`: true from that transaction until the one that
  deletes the call's last packet, so a pruning run that stopped half-way through a long call
  (a crash, a deploy) is finished by the next one.
- `ix_calls_audio_prunable`: the ARCHIVED and FAILED calls whose audio is still there (or half
  gone), oldest transition first. A call enters it when it is archived or fails and leaves it
  once its audio is gone, so it stays as small as the backlog.
- `ix_call_events_created_at`: events older than the retention, oldest first, without reading
  the table (pgqueuer_log has its own index on `created`).

Both indexes are built inside the migration's transaction, like the others (a concurrent build
would end the transaction that holds the one-migrator lock): on a large existing database the
build blocks writes to `calls` and `call_events` for its duration.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIO_PRUNABLE = (
    "state IN ('ARCHIVED', 'FAILED') AND (audio_pruned_at IS NULL OR audio_prune_pending)"
)


def upgrade() -> None:
    op.add_column("calls", sa.Column("audio_pruned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "calls",
        sa.Column("audio_prune_pending", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_index(
        "ix_calls_audio_prunable",
        "calls",
        ["updated_at", "call_id"],
        postgresql_where=sa.text(AUDIO_PRUNABLE),
    )
    op.create_index("ix_call_events_created_at", "call_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_call_events_created_at", "call_events")
    op.drop_index("ix_calls_audio_prunable", "calls")
    op.drop_column("calls", "audio_prune_pending")
    op.drop_column("calls", "audio_pruned_at")
