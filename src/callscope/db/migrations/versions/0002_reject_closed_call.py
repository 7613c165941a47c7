"""callscope_reject_closed_call(): aborts an ingest batch that raced a call's completion.

The ingest statement creates calls it has not seen; if such a call was created and completed
by someone else before the statement's upsert reaches it, this function (called from the
upsert) raises SQLSTATE CS409 so the whole statement rolls back and the batch is retried.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION callscope_reject_closed_call(closed_call_id text) RETURNS bigint
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'call % no longer accepts packets', closed_call_id
                USING ERRCODE = 'CS409';
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION callscope_reject_closed_call(text)")
