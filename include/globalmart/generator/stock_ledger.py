"""The generator's own stock in PostgreSQL (``generator_stock``), so the next run starts from it.

One run at a time holds the ledger (a PostgreSQL advisory lock, released when the run's
connection closes, even if the process is killed): two runs selling from the same shelves at
once would each sell the last units. The decisions are ``stock_rules``; this module reads and
writes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping

import numpy as np
import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from globalmart.generator.catalog import ShopCatalog
from globalmart.generator.publisher import GeneratorError
from globalmart.generator.stock_rules import MISSING, opening_sources, opening_stock, published_stock
from globalmart.settings import Settings

log = logging.getLogger(__name__)
LOCK_KEY = 0x6C6D_5354_4F43_4B  # pg_advisory_lock key of the generator's stock ledger


class StockLedger:
    """Open with ``with StockLedger(settings, catalog) as ledger``; ``opening()`` once, then ``save()``."""

    def __init__(self, settings: Settings, catalog: ShopCatalog):
        self.catalog = catalog
        self.fingerprint = catalog.fingerprint
        self.ids = pa.array(catalog.products.ids)
        self.index = {product_id: i for i, product_id in enumerate(catalog.products.ids)}
        self.saved = np.full(len(catalog.products), MISSING, dtype=np.int64)  # what the table holds
        self.connection = psycopg2.connect(settings.postgres.dsn())
        with self.connection, self.connection.cursor() as cursor:  # a session lock: it outlives the transaction
            cursor.execute("SELECT pg_try_advisory_lock(%s), to_regclass('generator_stock') IS NOT NULL", (LOCK_KEY,))
            locked, migrated = cursor.fetchone()
        if not (locked and migrated):
            self.connection.close()
            raise GeneratorError(
                "another generator run is selling from the shop's stock (it holds the generator_stock lock); "
                "wait for it to end or stop it: two runs at once would sell the same units"
                if migrated
                else "the database has no generator_stock table yet: run `globalmart db upgrade` (or `make run`)"
            )

    def __enter__(self) -> StockLedger:
        return self

    def __exit__(self, *_exc) -> None:
        self.connection.close()

    def _stock_by_product(self, query: str) -> np.ndarray:
        """(product_id, stock) rows → stock per catalog product, MISSING for products without a row."""
        buffer = io.BytesIO()
        with self.connection, self.connection.cursor() as cursor:
            cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buffer)
        stock = np.full(len(self.catalog.products), MISSING, dtype=np.int64)
        if not buffer.tell():
            return stock
        buffer.seek(0)
        table = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=["product_id", "stock"]),
            convert_options=pacsv.ConvertOptions(column_types={"product_id": pa.string(), "stock": pa.int64()}),
        )
        position = pc.index_in(table["product_id"], value_set=self.ids).to_numpy(zero_copy_only=False)
        known = ~np.isnan(position)  # rows of products outside this catalog are ignored
        stock[position[known].astype(np.int64)] = table["stock"].to_numpy()[known]
        return stock

    def opening(self) -> tuple[np.ndarray, dict[str, int]]:
        """The stock this run may sell from (``stock_rules.opening_stock``) and which source set it."""
        with self.connection, self.connection.cursor() as cursor:
            # a ledger of an older catalog describes other shelves
            cursor.execute("DELETE FROM generator_stock WHERE catalog_fingerprint <> %s", (self.fingerprint,))
        own = self._stock_by_product("SELECT product_id, stock FROM generator_stock")
        tracker = self._stock_by_product("SELECT product_id, stock FROM inventory_stock")
        self.saved = own
        stock = opening_stock(self.catalog.products.initial_stock, own, tracker)
        sources = opening_sources(own, tracker)
        log.info("opening stock from %s", sources)
        return stock, sources

    def save(self, stock: np.ndarray, unpublished_restocks: Mapping[str, int], run_tag: str) -> int:
        """Record the stock a run published (``stock_rules.published_stock``): the products whose
        stock changed since the last save; returns how many."""
        stock = published_stock(stock, unpublished_restocks, self.index)
        changed = np.flatnonzero(stock != self.saved)
        if not len(changed):
            return 0
        rows = pa.table({"product_id": self.ids.take(pa.array(changed)), "stock": pa.array(stock[changed])})
        buffer = io.BytesIO()
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
        buffer.seek(0)
        with self.connection, self.connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE generator_stock_changes (product_id text, stock integer) ON COMMIT DROP")
            cursor.copy_expert("COPY generator_stock_changes FROM STDIN WITH (FORMAT csv)", buffer)
            cursor.execute(
                "INSERT INTO generator_stock (product_id, catalog_fingerprint, stock, run_tag) "
                "SELECT product_id, %s, stock, %s FROM generator_stock_changes "
                "ON CONFLICT (product_id) DO UPDATE SET stock = EXCLUDED.stock, run_tag = EXCLUDED.run_tag, "
                "catalog_fingerprint = EXCLUDED.catalog_fingerprint, updated_at = now()",
                (self.fingerprint, run_tag),
            )
        self.saved[changed] = stock[changed]
        return len(changed)
