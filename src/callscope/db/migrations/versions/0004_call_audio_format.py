"""Each call's audio format (declared with POST /v1/calls, else the server default) and
free-form metadata.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMAT_KNOWN = (
    "(encoding = 'mulaw' AND sample_rate = 8000) "
    "OR (encoding = 'pcm_s16le' AND sample_rate IN (8000, 16000))"
)


def upgrade() -> None:
    op.add_column("calls", sa.Column("encoding", sa.Text(), server_default="mulaw", nullable=False))
    op.add_column(
        "calls", sa.Column("sample_rate", sa.Integer(), server_default="8000", nullable=False)
    )
    op.add_column(
        "calls",
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.create_check_constraint(op.f("ck_calls_format_known"), "calls", FORMAT_KNOWN)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_calls_format_known"), "calls", type_="check")
    op.drop_column("calls", "metadata")
    op.drop_column("calls", "sample_rate")
    op.drop_column("calls", "encoding")
