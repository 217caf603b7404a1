"""Streaming robustness: sums that cannot overflow, one count per business id, isolated batches

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# views over the widened columns: PostgreSQL cannot change a column's type under a view
VIEWS = """
CREATE VIEW product_window_ranking AS
SELECT *, rank() OVER (PARTITION BY granularity, window_start ORDER BY revenue DESC, product_id) AS revenue_rank
FROM product_window_sales;

CREATE VIEW abandonments_hourly AS
SELECT date_trunc('hour', abandoned_at) AS hour, country, count(*) AS abandoned_carts,
       sum(cart_value) AS abandoned_value
FROM cart_abandonments
GROUP BY 1, 2;
"""


def upgrade() -> None:
    op.execute("DROP VIEW product_window_ranking; DROP VIEW abandonments_hourly;")
    op.execute("""
    -- a window or a stock figure sums bounded values without bound: the sums get room
    ALTER TABLE sales_window_metrics
        ALTER COLUMN revenue TYPE numeric(18, 2), ALTER COLUMN avg_order_value TYPE numeric(18, 2),
        ALTER COLUMN transactions TYPE bigint, ALTER COLUMN units TYPE bigint;
    ALTER TABLE product_window_sales
        ALTER COLUMN revenue TYPE numeric(18, 2), ALTER COLUMN units TYPE bigint, ALTER COLUMN transactions TYPE bigint;
    ALTER TABLE anomalies ALTER COLUMN amount TYPE numeric(18, 2);
    ALTER TABLE inventory_stock ALTER COLUMN stock TYPE bigint,
        -- units sold while the stock was below them: the sales and the stock disagree (a
        -- data-quality alert each time); the stock keeps the true sum, below zero if need be
        ADD COLUMN oversold_units bigint NOT NULL DEFAULT 0;
    ALTER TABLE inventory_history
        ALTER COLUMN stock_before TYPE bigint, ALTER COLUMN stock_after TYPE bigint,
        ALTER COLUMN units_sold TYPE bigint, ALTER COLUMN units_restocked TYPE bigint;
    ALTER TABLE sessions ALTER COLUMN purchase_value TYPE numeric(18, 2);
    ALTER TABLE cart_abandonments ALTER COLUMN items TYPE bigint, ALTER COLUMN cart_value TYPE numeric(18, 2);

    -- the business ids a stateless mart query has counted, claimed in each batch's transaction:
    -- the same transaction or restock delivered again (producer retry, replay) counts once.
    -- Kept for the contract's event age window: an older duplicate is rejected by the contract
    CREATE TABLE processed_events (
        consumer   text NOT NULL,  -- the streaming query
        event_key  text NOT NULL,  -- the business id (transaction id, restock event id)
        event_time timestamptz NOT NULL,
        PRIMARY KEY (consumer, event_key)
    );
    CREATE INDEX processed_events_age ON processed_events (consumer, event_time);

    -- micro-batches that failed: attempts are bounded, then the records that make the batch fail
    -- are isolated into dead_letters and the rest is committed
    CREATE TABLE stream_batch_failures (
        query_name     text NOT NULL,
        checkpoint_id  uuid NOT NULL,
        batch_id       bigint NOT NULL,
        app            text NOT NULL,
        attempts       integer NOT NULL,
        last_error     text NOT NULL,
        first_failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        last_failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        isolated_records integer,  -- set when the batch was committed without its failing records
        resolved_at    timestamptz,
        PRIMARY KEY (query_name, checkpoint_id, batch_id)
    );
    """)
    op.execute(VIEWS)


def downgrade() -> None:
    op.execute("DROP VIEW product_window_ranking; DROP VIEW abandonments_hourly;")
    op.execute("""
    DROP TABLE stream_batch_failures, processed_events;
    ALTER TABLE sales_window_metrics
        ALTER COLUMN revenue TYPE numeric(14, 2), ALTER COLUMN avg_order_value TYPE numeric(12, 2),
        ALTER COLUMN transactions TYPE integer, ALTER COLUMN units TYPE integer;
    ALTER TABLE product_window_sales
        ALTER COLUMN revenue TYPE numeric(14, 2), ALTER COLUMN units TYPE integer, ALTER COLUMN transactions TYPE integer;
    ALTER TABLE anomalies ALTER COLUMN amount TYPE numeric(14, 2);
    ALTER TABLE inventory_stock ALTER COLUMN stock TYPE integer, DROP COLUMN oversold_units;
    ALTER TABLE inventory_history
        ALTER COLUMN stock_before TYPE integer, ALTER COLUMN stock_after TYPE integer,
        ALTER COLUMN units_sold TYPE integer, ALTER COLUMN units_restocked TYPE integer;
    ALTER TABLE sessions ALTER COLUMN purchase_value TYPE numeric(14, 2);
    ALTER TABLE cart_abandonments ALTER COLUMN items TYPE integer, ALTER COLUMN cart_value TYPE numeric(14, 2);
    """)
    op.execute(VIEWS)
