"""Full-text search over the stored (redacted) transcripts.

- `ix_transcripts_text_search`: a GIN index over `to_tsvector('english', text)` of each
  track's transcript. `GET /v1/calls?q=…` matches a call when one of its tracks matches
  `websearch_to_tsquery('english', q)`; the query repeats this very expression
  (`calls.repository.TRANSCRIPT_DOCUMENT`), so the planner can use the index. An expression
  index rather than a stored generated column: nothing is written twice, and the text is
  only ever searched in English.

Built inside the migration's transaction like the others: on a large existing database the
build blocks writes to `transcripts` for its duration.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_transcripts_text_search",
        "transcripts",
        [sa.text("to_tsvector('english'::regconfig, text)")],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_transcripts_text_search", "transcripts")
