"""Sales metrics without Spark state: the query's event-time watermark and its late rows in PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- the newest event time a query has committed, per checkpoint (a new checkpoint starts over):
    -- the next batch's watermark is this minus the allowed lateness
    CREATE TABLE stream_watermarks (
        query_name     text NOT NULL,
        checkpoint_id  uuid NOT NULL,
        max_event_time timestamptz NOT NULL,
        PRIMARY KEY (query_name, checkpoint_id)
    );

    -- events a stateless query turned away as later than its watermark, per hour of arrival
    CREATE TABLE late_events (
        query_name text NOT NULL,
        app        text NOT NULL,
        hour       timestamptz NOT NULL,
        late_rows  bigint NOT NULL,
        PRIMARY KEY (query_name, hour)
    );

    CREATE OR REPLACE VIEW late_events_hourly AS
    SELECT app, query_name, hour, sum(late_rows_dropped) AS late_rows_dropped
    FROM (
        SELECT app, query_name, date_trunc('hour', trigger_at) AS hour, late_rows_dropped
        FROM stream_progress WHERE late_rows_dropped > 0
        UNION ALL
        SELECT app, query_name, hour, late_rows FROM late_events
    ) AS late
    GROUP BY 1, 2, 3;
    """)


def downgrade() -> None:
    op.execute("""
    CREATE OR REPLACE VIEW late_events_hourly AS
    SELECT app, query_name, date_trunc('hour', trigger_at) AS hour, sum(late_rows_dropped) AS late_rows_dropped
    FROM stream_progress
    WHERE late_rows_dropped > 0
    GROUP BY 1, 2, 3;
    DROP TABLE late_events, stream_watermarks;
    """)
