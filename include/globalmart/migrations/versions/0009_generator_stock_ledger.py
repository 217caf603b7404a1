"""The generator's own stock per product, so that a run starts where the last one ended

Revision ID: 0009_generator_stock_ledger
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

revision = "0009_generator_stock_ledger"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    -- the stock a generator run published (sales and restocks it sent), saved during and at the
    -- end of the run; the next run starts from the lower of this and inventory_stock
    CREATE TABLE generator_stock (
        product_id          text PRIMARY KEY,
        catalog_fingerprint text NOT NULL,
        stock               integer NOT NULL CHECK (stock >= 0),
        run_tag             text NOT NULL,
        updated_at          timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE generator_stock;")
