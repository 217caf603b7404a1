"""Idempotent PostgreSQL writes from Spark: JDBC into a staging table, then one merge.

Spark's JDBC writer only appends or overwrites; a replayed batch would duplicate rows. So the
batch lands in a private staging table and a single transaction inserts what is new
(``ON CONFLICT DO NOTHING`` on the table's key) and drops the staging table.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg2
from psycopg2 import sql
from pyspark.sql import DataFrame

from globalmart.settings import Settings


def run_sql_file(settings: Settings, path: Path) -> None:
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute(path.read_text(encoding="utf-8"))
    finally:
        conn.close()


def insert_new_rows(df: DataFrame, table: str, settings: Settings) -> int:
    """Insert ``df`` into ``table`` skipping rows whose key already exists; return rows inserted."""
    pg = settings.postgres
    staging = f"{table}_staging_{uuid.uuid4().hex[:12]}"
    (
        df.write.format("jdbc")
        .option("url", pg.jdbc_url())
        .option("dbtable", staging)
        .option("user", pg.user)
        .option("password", pg.password.get_secret_value())
        .option("driver", "org.postgresql.Driver")
        .mode("overwrite")
        .save()
    )
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in df.columns)
    conn = psycopg2.connect(pg.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} ON CONFLICT DO NOTHING").format(
                    table=sql.Identifier(table), cols=columns, staging=sql.Identifier(staging)
                )
            )
            inserted = cur.rowcount
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(staging)))
    finally:
        conn.close()
    return inserted
