"""Streaming incidents of the streaming_pipeline supervisor: one row (and one email) per incident

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- an incident of a streaming app (or of the process hosting apps, when it is down): opened
    -- once however many checks see it, so its email is sent once; closed when it clears
    CREATE TABLE stream_incidents (
        incident_id bigserial PRIMARY KEY,
        subject     text NOT NULL,
        problem     text NOT NULL CHECK (problem IN ('down', 'stalled', 'lagging')),
        reason      text NOT NULL,
        figures     jsonb NOT NULL DEFAULT '{}',
        opened_by   text NOT NULL,
        opened_at   timestamptz NOT NULL DEFAULT now(),
        closed_by   text,
        closed_at   timestamptz
    );
    CREATE UNIQUE INDEX stream_incidents_open ON stream_incidents (subject, problem) WHERE closed_at IS NULL;
    CREATE INDEX stream_incidents_recent ON stream_incidents (opened_at DESC);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE stream_incidents;")
