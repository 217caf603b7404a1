"""Idempotent PostgreSQL writes from Spark: JDBC into a staging table, then one merge.

Spark's JDBC writer only appends or overwrites; a replayed batch would duplicate rows. So the
batch lands in a private staging table and a single transaction inserts what is new
(``ON CONFLICT DO NOTHING`` on the table's key) and drops the staging table.
"""

from __future__ import annotations

import uuid

import psycopg2
from psycopg2 import sql
from pyspark.sql import DataFrame

from globalmart.settings import Settings


def _connect(settings: Settings):
    pg = settings.postgres
    return psycopg2.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password.get_secret_value(), dbname=pg.database
    )


def run_sql_file(settings: Settings, path) -> None:
    with _connect(settings) as conn, conn.cursor() as cur:
        cur.execute(open(path, encoding="utf-8").read())
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
    conn = _connect(settings)
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
