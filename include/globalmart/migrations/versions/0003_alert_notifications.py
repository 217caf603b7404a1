"""Alert emails: what each alert became (emailed, digested, suppressed) and the throttle state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- one row per alert the alerts DAG handled: a replayed alert finds its row and sends nothing
    CREATE TABLE alert_notifications (
        alert_id      text PRIMARY KEY,
        kind          text NOT NULL,
        subject_key   text NOT NULL,  -- product (stock), user (anomaly) or hour (spike)
        outcome       text NOT NULL CHECK (outcome IN ('sent', 'digested', 'throttled', 'below_threshold')),
        email_subject text,           -- of the email that carried it; null when suppressed
        event_time    timestamptz NOT NULL,
        decided_at    timestamptz NOT NULL
    );
    CREATE INDEX alert_notifications_recent ON alert_notifications (decided_at DESC);

    -- when each (kind, subject key) was last emailed: one email per key per throttle period
    CREATE TABLE alert_throttle (
        kind          text NOT NULL,
        subject_key   text NOT NULL,
        last_sent_at  timestamptz NOT NULL,
        last_alert_id text NOT NULL,
        PRIMARY KEY (kind, subject_key)
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE alert_throttle, alert_notifications;")
