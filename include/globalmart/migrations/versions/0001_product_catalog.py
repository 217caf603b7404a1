"""Product catalog with initial stock (the inventory tracker's starting point)

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE product_catalog (
        product_id          text PRIMARY KEY,
        name                text NOT NULL,
        category            text NOT NULL,
        department          text NOT NULL,
        price               numeric(10, 2) NOT NULL CHECK (price >= 0),
        initial_stock       integer NOT NULL CHECK (initial_stock >= 0),
        rating              numeric(2, 1) CHECK (rating BETWEEN 1 AND 5),
        catalog_fingerprint text NOT NULL
    );
    CREATE INDEX product_catalog_category ON product_catalog (category);

    CREATE TABLE catalog_loads (
        fingerprint text PRIMARY KEY,
        seed        integer NOT NULL,
        users       integer NOT NULL,
        products    integer NOT NULL,
        categories  integer NOT NULL,
        loaded_at   timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE catalog_loads; DROP TABLE product_catalog;")
