"""Sales metrics: revenue, transactions, units and average order value by category × country,
and every product's sales, in event-time tumbling windows of one minute and one hour.

One query per window length. Windows are emitted in update mode: a window's row is rewritten
with its full totals each time an event (also a late one, within the watermark) changes it.
Events later than the watermark are dropped by Spark and counted in ``stream_progress``
(``late_rows_dropped``, per hour in the ``late_events_hourly`` view).
"""

from __future__ import annotations

import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.settings import Settings
from globalmart.streaming.contracts import checked_records, valid_events
from globalmart.streaming.runner import RunOptions, kafka_stream, run, start_sink_query
from globalmart.streaming.sink import BatchContext, rows_of, upsert

APP = "sales_metrics"
ALL_CATEGORIES = "ALL"  # the category of each country's totals
GRANULARITIES = {"1m": "1 minute", "1h": "1 hour"}
MONEY = "decimal(14,2)"

SALES_COLUMNS = ("granularity", "window_start", "window_end", "category", "country", "revenue", "transactions",
                 "units", "avg_order_value", "last_received_at")
PRODUCT_COLUMNS = ("granularity", "window_start", "window_end", "product_id", "category", "units", "revenue", "transactions")


def _line_revenue(item: Column) -> Column:
    return item.quantity * item.unit_price.cast("decimal(12,2)")


def sales_facts(transactions: DataFrame) -> DataFrame:
    """Transactions → rows to sum per window: one per (transaction, category it touches), one
    ``ALL`` row per transaction (``kind='category'``), and one per line (``kind='product'``)."""
    categories = F.array_union(F.array_distinct(F.transform("items", lambda item: item.category)), F.array(F.lit(ALL_CATEGORIES)))
    per_category = transactions.select(
        "event_time", "kafka_timestamp", "country", "items", F.explode(categories).alias("category")
    ).select(
        F.lit("category").alias("kind"),
        "event_time",
        "kafka_timestamp",
        "category",
        "country",
        F.lit("").alias("product_id"),
        F.aggregate(
            F.filter("items", lambda item: (F.col("category") == ALL_CATEGORIES) | (item.category == F.col("category"))),
            F.lit(0).cast("decimal(22,2)"),
            lambda total, item: (total + _line_revenue(item)).cast("decimal(22,2)"),
        ).alias("revenue"),
        F.aggregate(
            F.filter("items", lambda item: (F.col("category") == ALL_CATEGORIES) | (item.category == F.col("category"))),
            F.lit(0).cast("long"),
            lambda total, item: total + item.quantity,
        ).alias("units"),
    )
    per_product = transactions.select("event_time", "kafka_timestamp", F.explode("items").alias("item")).select(
        F.lit("product").alias("kind"),
        "event_time",
        "kafka_timestamp",
        F.col("item.category").alias("category"),
        F.lit("").alias("country"),
        F.col("item.product_id").alias("product_id"),
        _line_revenue(F.col("item")).cast("decimal(22,2)").alias("revenue"),
        F.col("item.quantity").alias("units"),
    )
    return per_category.unionByName(per_product)


def window_sales(facts: DataFrame, granularity: str) -> DataFrame:
    """Totals per tumbling window of ``granularity`` ('1m' or '1h'); needs a watermark on event_time."""
    return (
        facts.groupBy(F.window("event_time", GRANULARITIES[granularity]), "kind", "category", "country", "product_id")
        .agg(
            F.sum("revenue").cast(MONEY).alias("revenue"),
            F.count(F.lit(1)).cast("int").alias("transactions"),
            F.sum("units").cast("int").alias("units"),
            F.max("kafka_timestamp").alias("last_received_at"),
        )
        .select(
            F.lit(granularity).alias("granularity"),
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "kind", "category", "country", "product_id", "revenue", "transactions", "units",
            F.round(F.col("revenue") / F.col("transactions"), 2).cast("decimal(12,2)").alias("avg_order_value"),
            "last_received_at",
        )
    )


def write_window_sales(batch: DataFrame, _context: BatchContext):
    table = batch.toArrow()
    category_rows = table.filter(pc.equal(table["kind"], "category"))
    product_rows = table.filter(pc.equal(table["kind"], "product"))

    def write(cur) -> int:
        return upsert(cur, "sales_window_metrics", SALES_COLUMNS, rows_of(category_rows, SALES_COLUMNS),
                      key=("granularity", "window_start", "category", "country")) + upsert(
            cur, "product_window_sales", PRODUCT_COLUMNS, rows_of(product_rows, PRODUCT_COLUMNS),
            key=("granularity", "window_start", "product_id"))

    return write


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    queries = []
    for granularity in GRANULARITIES:
        checked = checked_records(kafka_stream(spark, settings, ["transactions"]), settings)
        transactions = valid_events(checked, settings, "transactions").withWatermark(
            "event_time", f"{settings.streaming.sales_watermark_seconds} seconds"
        )
        sales = window_sales(sales_facts(transactions), granularity)
        queries.append(start_sink_query(sales, settings, options, f"window_{granularity}", write_window_sales))
    return queries


def main(argv: list[str] | None = None) -> None:
    run(APP, start_queries, argv)


if __name__ == "__main__":
    main()
