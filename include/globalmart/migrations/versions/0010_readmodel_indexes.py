"""Indexes for the read model's queries that no index led (found by EXPLAIN in
tests/integration/test_readmodel_indexes.py)

Revision ID: 0010_readmodel_indexes
Revises: 0009_generator_stock_ledger
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010_readmodel_indexes"
down_revision = "0009_generator_stock_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- the latest anomalies of every kind (anomalies_recent leads with kind: it serves one kind
    -- only) and the anomalies of the day in the dashboard summary
    CREATE INDEX anomalies_latest ON anomalies (last_event_time DESC, anomaly_id);
    -- the freshness (as_of) of the anomalies and of the stock: the newest detection / update
    CREATE INDEX anomalies_detected ON anomalies (detected_at);
    CREATE INDEX inventory_stock_updated ON inventory_stock (updated_at);
    -- a page of the latest abandoned carts in its exact order (ties by user); it replaces the
    -- index on abandoned_at alone, its prefix
    CREATE INDEX cart_abandonments_latest ON cart_abandonments (abandoned_at DESC, user_id);
    DROP INDEX cart_abandonments_time;
    """)


def downgrade() -> None:
    op.execute("""
    CREATE INDEX cart_abandonments_time ON cart_abandonments (abandoned_at DESC);
    DROP INDEX cart_abandonments_latest;
    DROP INDEX inventory_stock_updated;
    DROP INDEX anomalies_detected;
    DROP INDEX anomalies_latest;
    """)
