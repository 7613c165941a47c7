"""Live events: every call_events row is announced with NOTIFY, and ids follow commit order.

Two triggers on call_events:

- `call_events_in_commit_order` (BEFORE INSERT, per statement) takes a transaction-level
  advisory lock before the statement's ids are drawn. The lock is held until the transaction
  ends, so a transaction can only draw event ids once every earlier one has committed or
  rolled back: committed ids are increasing in commit order. That is what makes
  `?since=<event_id>` exact: nothing can commit later with a smaller id.
- `call_events_notify` (AFTER INSERT, per row) sends the row as JSON on channel
  `callscope_events`; NOTIFY is delivered at commit, in commit order. A row too big for a
  notification (8,000 bytes) is announced by id only and the listener reads it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Any constant bigint; only this trigger takes it.
EVENT_ORDER_LOCK = 7_203_339_201

UPGRADE: tuple[str, ...] = (
    f"""\
CREATE FUNCTION callscope_events_in_commit_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({EVENT_ORDER_LOCK});
    RETURN NULL;
END $$
""",
    """\
CREATE TRIGGER call_events_in_commit_order BEFORE INSERT ON call_events
FOR EACH STATEMENT EXECUTE FUNCTION callscope_events_in_commit_order()
""",
    """\
CREATE FUNCTION callscope_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload text := json_build_object(
        'id', NEW.id, 'call_id', NEW.call_id, 'type', NEW.type,
        'from_state', NEW.from_state, 'to_state', NEW.to_state,
        'data', NEW.data, 'created_at', NEW.created_at
    )::text;
BEGIN
    IF octet_length(payload) > 7900 THEN
        payload := json_build_object('id', NEW.id, 'truncated', true)::text;
    END IF;
    PERFORM pg_notify('callscope_events', payload);
    RETURN NULL;
END $$
""",
    """\
CREATE TRIGGER call_events_notify AFTER INSERT ON call_events
FOR EACH ROW EXECUTE FUNCTION callscope_events_notify()
""",
)

DOWNGRADE: tuple[str, ...] = (
    "DROP TRIGGER call_events_notify ON call_events",
    "DROP FUNCTION callscope_events_notify()",
    "DROP TRIGGER call_events_in_commit_order ON call_events",
    "DROP FUNCTION callscope_events_in_commit_order()",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
