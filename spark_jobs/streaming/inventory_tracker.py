"""Inventory tracker: every product's real stock, kept current from sales and restocks.

stock = the catalog's initial stock (PostgreSQL ``product_catalog``) − units sold + units
restocked. Every catalog product gets its row when the tracker starts; a product first seen
later (the catalog loaded after the tracker started) takes the catalog's initial stock then,
and one counted from 0 before the catalog knew it is reconciled with it once. Each micro-batch's stock movements (a line sold, a restock) are collected, each
transaction and restock counted once (``processed_events``: a redelivery changes nothing),
reduced to one change per product and applied to ``inventory_stock`` in the batch's
exactly-once transaction, with one ``inventory_history`` row per product and batch. A product
that moves into a worse state (ok → low → critical, thresholds from settings) raises one alert
for that crossing; further sales while it stays low do not, and a restock back to ok re-arms
it. A sale of more than the stock holds is a data-quality problem (the events disagree with
the stock): the stock keeps the true sum, below zero, the units are added to
``oversold_units`` and a ``data_quality.oversold`` alert says so, instead of a critical-stock one.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
from psycopg2.extras import execute_values
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.db import connect
from globalmart.settings import Settings, Thresholds
from globalmart.streaming.contracts import dedup_horizon_seconds
from globalmart.streaming.runner import RunOptions, run, start_sink_query, topic_events
from globalmart.streaming.sink import Alert, BatchContext, count_once, first_deliveries, rows_of, write_alerts

APP = "inventory_tracker"
STATES = ("ok", "low", "critical")  # in order of severity
CHANGE_COLUMNS = ("product_id", "category", "units_sold", "units_restocked", "first_event_time", "last_event_time")
DELIVERY = ("kafka_topic", "kafka_partition", "kafka_offset")


def stock_movements(transactions: DataFrame, restocks: DataFrame) -> DataFrame:
    """One row per line sold and per restock: the business id it counts under (``event_key``),
    product, category, units sold, units restocked, event time, and where it was delivered."""
    sold = transactions.select("transaction_id", "event_time", *DELIVERY, F.explode("items").alias("item")).select(
        F.concat(F.lit("transaction:"), "transaction_id").alias("event_key"),
        F.col("item.product_id").alias("product_id"),
        F.col("item.category").alias("category"),
        F.col("item.quantity").alias("units_sold"),
        F.lit(0).cast("long").alias("units_restocked"),
        "event_time", *DELIVERY,
    )
    arrived = restocks.select(
        F.concat(F.lit("restock:"), "event_id").alias("event_key"),
        "product_id",
        F.lit(None).cast("string").alias("category"),
        F.lit(0).cast("long").alias("units_sold"),
        F.col("quantity").alias("units_restocked"),
        "event_time", *DELIVERY,
    )
    return sold.unionByName(arrived)


def stock_changes(movements: pa.Table) -> pa.Table:
    """One row per product touched by the counted movements: units sold, units restocked, first
    and last event time (in Arrow on the driver: the movements are de-duplicated there first)."""
    totals = movements.group_by("product_id").aggregate([
        ("category", "max"), ("units_sold", "sum"), ("units_restocked", "sum"), ("event_time", "min"), ("event_time", "max"),
    ])
    return pa.table({
        "product_id": totals.column("product_id"),
        "category": totals.column("category_max"),
        "units_sold": totals.column("units_sold_sum"),
        "units_restocked": totals.column("units_restocked_sum"),
        "first_event_time": totals.column("event_time_min"),
        "last_event_time": totals.column("event_time_max"),
    })


def state_sql(column: str) -> str:
    return f"CASE WHEN {column} < %(critical)s THEN 'critical' WHEN {column} < %(low)s THEN 'low' ELSE 'ok' END"


SEED_FROM_CATALOG = f"""
INSERT INTO inventory_stock (product_id, category, initial_stock, stock, state, in_catalog)
SELECT product_id, category, initial_stock, initial_stock, {state_sql('initial_stock')}, true
FROM product_catalog
ON CONFLICT (product_id) DO NOTHING
"""

APPLY_CHANGES = f"""
-- a product seen for the first time starts from the catalog's initial stock when the catalog has
-- it (it may have been loaded after the tracker started), else from 0
INSERT INTO inventory_stock (product_id, category, initial_stock, stock, state, in_catalog)
SELECT d.product_id, coalesce(c.category, d.category), coalesce(c.initial_stock, 0), coalesce(c.initial_stock, 0),
       {state_sql('coalesce(c.initial_stock, 0)')}, c.product_id IS NOT NULL
FROM inventory_changes d LEFT JOIN product_catalog c USING (product_id)
ON CONFLICT (product_id) DO NOTHING;

-- a product counted from 0 before the catalog knew it gets the catalog's initial stock once
UPDATE inventory_stock s
SET initial_stock = c.initial_stock, stock = s.stock + c.initial_stock, in_catalog = true,
    category = coalesce(s.category, c.category), state = {state_sql('s.stock + c.initial_stock')}
FROM inventory_changes d JOIN product_catalog c USING (product_id)
WHERE s.product_id = d.product_id AND NOT s.in_catalog;

WITH before AS (
    SELECT s.product_id, s.stock, s.state FROM inventory_stock s JOIN inventory_changes d USING (product_id)
), after AS (
    UPDATE inventory_stock s
    SET stock = s.stock - d.units_sold + d.units_restocked,
        units_sold = s.units_sold + d.units_sold,
        units_restocked = s.units_restocked + d.units_restocked,
        -- units sold beyond the stock (below zero, or deeper below zero)
        oversold_units = s.oversold_units + greatest(0, least(d.units_sold - d.units_restocked - s.stock, d.units_sold - d.units_restocked)),
        state = {state_sql('s.stock - d.units_sold + d.units_restocked')},
        category = coalesce(s.category, d.category),
        last_event_time = greatest(s.last_event_time, d.last_event_time),
        updated_at = now()
    FROM inventory_changes d
    WHERE s.product_id = d.product_id
    RETURNING s.product_id, s.stock, s.state, s.category
)
INSERT INTO inventory_history (product_id, checkpoint_id, batch_id, stock_before, units_sold, units_restocked,
                               stock_after, state_before, state_after, first_event_time, last_event_time)
SELECT d.product_id, %(checkpoint_id)s, %(batch_id)s, b.stock, d.units_sold, d.units_restocked,
       a.stock, b.state, a.state, d.first_event_time, d.last_event_time
FROM inventory_changes d JOIN before b USING (product_id) JOIN after a USING (product_id)
RETURNING product_id, stock_after, state_before, state_after, last_event_time, stock_before
"""


def crossing_alerts(crossings: list[tuple], context: BatchContext, thresholds: Thresholds) -> list[Alert]:
    """(product_id, stock_after, state_before, state_after, last_event_time, stock_before) → one
    alert per move to a worse state; one data-quality alert per batch that sells a product below zero."""
    alerts = []
    for product_id, stock, before, after, event_time, stock_before in crossings:
        if stock < 0 and stock < stock_before:
            oversold = min(stock_before, 0) - stock
            alerts.append(Alert(
                alert_id=f"oversold:{product_id}:{context.checkpoint_id}:{context.batch_id}",
                kind="data_quality.oversold",
                severity="warning",
                subject=f"{product_id} sold {oversold} unit{'s' if oversold != 1 else ''} more than its stock ({stock} left)",
                detail={
                    "about": product_id,
                    "description": f"Sales of {product_id} took its stock from {stock_before} to {stock}: the sales "
                                   "and the stock records (catalog stock, restocks) disagree.",
                    "advice": "check the product's restocks and the catalog's initial stock; "
                              "the stock figure stays below zero until a restock arrives.",
                    "facts": {"Product": product_id, "Stock before": stock_before, "Stock after": stock,
                              "Units oversold": oversold},
                },
                event_time=event_time,
            ))
            continue
        if STATES.index(after) <= STATES.index(before):
            continue
        limit = thresholds.critical_stock if after == "critical" else thresholds.low_stock
        alerts.append(Alert(
            alert_id=f"stock:{product_id}:{after}:{context.checkpoint_id}:{context.batch_id}",
            kind=f"stock.{after}",
            severity="critical" if after == "critical" else "warning",
            subject=f"{'Critical' if after == 'critical' else 'Low'} stock: {product_id} has {stock} left (below {limit})",
            detail={"product_id": product_id, "stock": stock, "state_before": before, "state": after, "threshold": limit},
            event_time=event_time,
        ))
    return alerts


def apply_stock_changes(thresholds: Thresholds, horizon: timedelta):
    limits = {"low": thresholds.low_stock, "critical": thresholds.critical_stock}

    def handle(movements: DataFrame, context: BatchContext):
        deliveries = first_deliveries(movements.toArrow(), "event_key")

        def write(cur) -> int:
            rows = rows_of(stock_changes(count_once(cur, context.query_name, deliveries, "event_key", horizon)), CHANGE_COLUMNS)
            if not rows:
                return 0
            cur.execute(
                "CREATE TEMP TABLE inventory_changes (product_id text PRIMARY KEY, category text, units_sold bigint, "
                "units_restocked bigint, first_event_time timestamptz, last_event_time timestamptz) ON COMMIT DROP"
            )
            execute_values(cur, f"INSERT INTO inventory_changes ({', '.join(CHANGE_COLUMNS)}) VALUES %s", rows, page_size=5000)
            cur.execute(APPLY_CHANGES, limits | {"checkpoint_id": context.checkpoint_id, "batch_id": context.batch_id})
            write_alerts(cur, APP, crossing_alerts(cur.fetchall(), context, thresholds))
            return len(rows)

        return write

    return handle


def seed_stock_from_catalog(settings: Settings) -> int:
    """Every catalog product gets its stock row (initial stock) before the first change."""
    t = settings.thresholds
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute(SEED_FROM_CATALOG, {"low": t.low_stock, "critical": t.critical_stock})
        return cur.rowcount


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    seed_stock_from_catalog(settings)
    movements = stock_movements(topic_events(spark, settings, "transactions"), topic_events(spark, settings, "inventory"))
    horizon = timedelta(seconds=dedup_horizon_seconds(settings))
    return [start_sink_query(movements, settings, options, "stock", apply_stock_changes(settings.thresholds, horizon),
                             output_mode="append", publishes_alerts=True)]


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
