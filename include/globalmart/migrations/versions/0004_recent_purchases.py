"""Anomaly detector: each user's recent purchases, over which the rapid-fire rules run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- the last few minutes of purchases per user: a stateless Spark query appends to it and the
    -- rapid-fire rules ("5 in any minute", "over $10,000 in any five minutes") are evaluated over it
    -- in the same transaction; rows older than the longest rule plus the allowed lateness are purged
    CREATE TABLE recent_purchases (
        transaction_id text PRIMARY KEY,
        user_id        text NOT NULL,
        country        text NOT NULL,
        event_time     timestamptz NOT NULL,
        amount         double precision NOT NULL,
        received_at    timestamptz NOT NULL
    );
    CREATE INDEX recent_purchases_user ON recent_purchases (user_id, event_time);
    CREATE INDEX recent_purchases_age ON recent_purchases (event_time);
    """)


def downgrade() -> None:
    op.execute("DROP TABLE recent_purchases")
