"""Every table keyed by `call_id`: the primary keys of `call_events` and `ai_attempts`
become `(call_id, id)`, so that no unique constraint spans calls and each table can be
distributed by `call_id` (Citus requires the distribution column in every unique
constraint; docs/scaling.md).

- `call_events`: `pk_call_events` on `(call_id, id)` replaces the one on `id` and the
  index `ix_call_events_call_id_id` it duplicates; `ix_call_events_id` keeps reads by id
  (a live feed's `since=` replay, a truncated notification, retention's deletes) indexed.
- `ai_attempts`: `pk_ai_attempts` on `(call_id, id)`; attempts are only ever read with their
  call.

Ids still come from their identity sequences, so they stay unique in practice; they are just
no longer *constrained* unique across calls. Built inside the migration's transaction like
the others: on a large existing database the rebuild blocks writes to both tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("pk_call_events", "call_events", type_="primary")
    op.create_primary_key("pk_call_events", "call_events", ["call_id", "id"])
    op.drop_index("ix_call_events_call_id_id", "call_events")
    op.create_index("ix_call_events_id", "call_events", ["id"])
    op.drop_constraint("pk_ai_attempts", "ai_attempts", type_="primary")
    op.create_primary_key("pk_ai_attempts", "ai_attempts", ["call_id", "id"])


def downgrade() -> None:
    op.drop_constraint("pk_ai_attempts", "ai_attempts", type_="primary")
    op.create_primary_key("pk_ai_attempts", "ai_attempts", ["id"])
    op.drop_index("ix_call_events_id", "call_events")
    op.create_index("ix_call_events_call_id_id", "call_events", ["call_id", "id"])
    op.drop_constraint("pk_call_events", "call_events", type_="primary")
    op.create_primary_key("pk_call_events", "call_events", ["id"])
