"""Load the product catalog (with initial stock) into PostgreSQL, once per catalog version."""

from __future__ import annotations

import io

import pyarrow.csv as pacsv

from globalmart import db
from globalmart.generator.catalog import ShopCatalog
from globalmart.settings import Settings

COLUMNS = ("product_id", "name", "category", "department", "price", "initial_stock", "rating", "catalog_fingerprint")


def loaded_fingerprint(settings: Settings) -> str | None:
    with db.connect(settings) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT fingerprint FROM catalog_loads ORDER BY loaded_at DESC LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else None


def load_products(settings: Settings, catalog: ShopCatalog, force: bool = False) -> int:
    """Make ``product_catalog`` hold exactly this catalog; 0 when it already did.

    One transaction: COPY into a staging table, upsert, delete products of an older catalog.
    Returns the number of products written.
    """
    fingerprint = catalog.fingerprint
    if not force and loaded_fingerprint(settings) == fingerprint:
        return 0
    table = catalog.products.to_arrow().append_column(
        "catalog_fingerprint", [[fingerprint] * len(catalog.products)]
    )
    buffer = io.BytesIO()
    pacsv.write_csv(table.select(list(COLUMNS)), buffer, pacsv.WriteOptions(include_header=False))
    buffer.seek(0)
    columns = ", ".join(COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
    s = catalog.settings
    with db.connect(settings) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE product_catalog_staging (LIKE product_catalog) ON COMMIT DROP")
        cursor.copy_expert(f"COPY product_catalog_staging ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
        cursor.execute(
            f"INSERT INTO product_catalog ({columns}) SELECT {columns} FROM product_catalog_staging "
            f"ON CONFLICT (product_id) DO UPDATE SET {updates}"
        )
        cursor.execute("DELETE FROM product_catalog WHERE catalog_fingerprint <> %s", (fingerprint,))
        cursor.execute(
            "INSERT INTO catalog_loads (fingerprint, seed, users, products, categories) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (fingerprint) DO UPDATE SET loaded_at = now()",
            (fingerprint, s.seed, s.users, s.products, s.categories),
        )
    return len(catalog.products)
