"""Dead-letter replay: when a dead letter was re-published, and its reason when first rejected

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE dead_letters
        ADD COLUMN replayed_at     timestamptz,  -- re-published to source_topic: a later replay skips it
        ADD COLUMN revalidated_at  timestamptz,  -- last replay that checked it again
        ADD COLUMN original_reason text;         -- the first reason, kept when a replay records a new one
    CREATE INDEX dead_letters_pending_replay ON dead_letters (source_topic, detected_at) WHERE replayed_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX dead_letters_pending_replay;
    ALTER TABLE dead_letters DROP COLUMN replayed_at, DROP COLUMN revalidated_at, DROP COLUMN original_reason;
    """)
