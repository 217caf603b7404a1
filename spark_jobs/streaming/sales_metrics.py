"""Sales metrics: revenue, transactions, units and average order value by category × country,
and every product's sales, in event-time tumbling windows of one minute and one hour.

One query keeps the minute windows in Spark state, in update mode: a window's row is rewritten
with its full totals each time an event (also a late one, within the watermark) changes it.
Events later than the watermark are dropped by Spark and counted in ``stream_progress``
(``late_rows_dropped``, per hour in the ``late_events_hourly`` view).

Every figure is a sum (transactions, units, revenue; the average order value is their
ratio), so an hour is exactly the sum of its minutes: the hours a batch touched are rolled up
from their minute rows in SQL, in the batch's transaction. A second Spark query for hours
would scan, check and aggregate the same input again for the same numbers.
"""

from __future__ import annotations

import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.settings import Settings
from globalmart.streaming.runner import RunOptions, run, start_sink_query, topic_events
from globalmart.streaming.sink import BatchContext, rows_of, upsert

APP = "sales_metrics"
ALL_CATEGORIES = "ALL"  # the category of each country's totals
MONEY = "decimal(14,2)"

SALES_COLUMNS = ("granularity", "window_start", "window_end", "category", "country", "revenue", "transactions",
                 "units", "avg_order_value", "last_received_at")
PRODUCT_COLUMNS = ("granularity", "window_start", "window_end", "product_id", "category", "units", "revenue", "transactions")


FACT = "struct<kind:string,category:string,country:string,product_id:string,revenue:decimal(22,2),units:bigint>"


def _line_revenue(item: Column) -> Column:
    return item.quantity * item.unit_price.cast("decimal(12,2)")


def sales_facts(transactions: DataFrame) -> DataFrame:
    """Transactions → rows to sum per window: one per (transaction, category it touches), one
    ``ALL`` row per transaction (``kind='category'``), and one per line (``kind='product'``).

    All of a transaction's rows come from one array exploded once: a union of two selects
    would scan (and contract-check) the Kafka source twice per micro-batch."""
    categories = F.array_union(F.array_distinct(F.transform("items", lambda item: item.category)), F.array(F.lit(ALL_CATEGORIES)))

    def category_fact(category: Column) -> Column:
        lines = F.filter("items", lambda item: (category == ALL_CATEGORIES) | (item.category == category))
        return F.struct(
            F.lit("category").alias("kind"),
            category.alias("category"),
            F.col("country").alias("country"),
            F.lit("").alias("product_id"),
            F.aggregate(lines, F.lit(0).cast("decimal(22,2)"),
                        lambda total, item: (total + _line_revenue(item)).cast("decimal(22,2)")).alias("revenue"),
            F.aggregate(lines, F.lit(0).cast("long"), lambda total, item: total + item.quantity).alias("units"),
        ).cast(FACT)

    def product_fact(item: Column) -> Column:
        return F.struct(
            F.lit("product").alias("kind"),
            item.category.alias("category"),
            F.lit("").alias("country"),
            item.product_id.alias("product_id"),
            _line_revenue(item).cast("decimal(22,2)").alias("revenue"),
            item.quantity.cast("long").alias("units"),
        ).cast(FACT)

    facts = F.concat(F.transform(categories, category_fact), F.transform("items", product_fact))
    return transactions.select("event_time", "kafka_timestamp", F.explode(facts).alias("fact")).select(
        "fact.kind", "event_time", "kafka_timestamp", "fact.category", "fact.country", "fact.product_id",
        "fact.revenue", "fact.units",
    )


def minute_sales(facts: DataFrame) -> DataFrame:
    """Totals per one-minute tumbling window; needs a watermark on event_time."""
    return (
        facts.groupBy(F.window("event_time", "1 minute"), "kind", "category", "country", "product_id")
        .agg(
            F.sum("revenue").cast(MONEY).alias("revenue"),
            F.count(F.lit(1)).cast("int").alias("transactions"),
            F.sum("units").cast("int").alias("units"),
            F.max("kafka_timestamp").alias("last_received_at"),
        )
        .select(
            F.lit("1m").alias("granularity"),
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            "kind", "category", "country", "product_id", "revenue", "transactions", "units",
            F.round(F.col("revenue") / F.col("transactions"), 2).cast("decimal(12,2)").alias("avg_order_value"),
            "last_received_at",
        )
    )


# the hour of a minute window, in UTC whatever the session's time zone
HOUR_OF = "date_bin('1 hour', {0}, timestamptz '2000-01-01 00:00:00+00')"

ROLL_UP_CATEGORY_HOURS = f"""
WITH touched AS (
    SELECT DISTINCT {HOUR_OF.format('minute')} AS hour, category, country
    FROM unnest(%s::timestamptz[], %s::text[], %s::text[]) AS t(minute, category, country)
)
INSERT INTO sales_window_metrics AS m (granularity, window_start, window_end, category, country, revenue,
                                       transactions, units, avg_order_value, last_received_at)
SELECT '1h', t.hour, t.hour + interval '1 hour', t.category, t.country, sum(s.revenue), sum(s.transactions),
       sum(s.units), round(sum(s.revenue) / sum(s.transactions), 2), max(s.last_received_at)
FROM touched t JOIN sales_window_metrics s
  ON s.granularity = '1m' AND s.window_start >= t.hour AND s.window_start < t.hour + interval '1 hour'
 AND s.category = t.category AND s.country = t.country
GROUP BY t.hour, t.category, t.country
ON CONFLICT (granularity, window_start, category, country) DO UPDATE SET
    revenue = EXCLUDED.revenue, transactions = EXCLUDED.transactions, units = EXCLUDED.units,
    avg_order_value = EXCLUDED.avg_order_value, last_received_at = EXCLUDED.last_received_at,
    updated_at = clock_timestamp()
"""

ROLL_UP_PRODUCT_HOURS = f"""
WITH touched AS (
    SELECT DISTINCT {HOUR_OF.format('minute')} AS hour, product_id
    FROM unnest(%s::timestamptz[], %s::text[]) AS t(minute, product_id)
)
INSERT INTO product_window_sales (granularity, window_start, window_end, product_id, category, units, revenue, transactions)
SELECT '1h', t.hour, t.hour + interval '1 hour', t.product_id, max(s.category), sum(s.units), sum(s.revenue),
       sum(s.transactions)
FROM touched t JOIN product_window_sales s
  ON s.granularity = '1m' AND s.window_start >= t.hour AND s.window_start < t.hour + interval '1 hour'
 AND s.product_id = t.product_id
GROUP BY t.hour, t.product_id
ON CONFLICT (granularity, window_start, product_id) DO UPDATE SET
    category = EXCLUDED.category, units = EXCLUDED.units, revenue = EXCLUDED.revenue,
    transactions = EXCLUDED.transactions, updated_at = clock_timestamp()
"""


def write_window_sales(batch: DataFrame, _context: BatchContext):
    table = batch.toArrow()
    category_rows = table.filter(pc.equal(table["kind"], "category"))
    product_rows = table.filter(pc.equal(table["kind"], "product"))

    def write(cur) -> int:
        written = upsert(cur, "sales_window_metrics", SALES_COLUMNS, rows_of(category_rows, SALES_COLUMNS),
                         key=("granularity", "window_start", "category", "country"))
        written += upsert(cur, "product_window_sales", PRODUCT_COLUMNS, rows_of(product_rows, PRODUCT_COLUMNS),
                          key=("granularity", "window_start", "product_id"))
        cur.execute(ROLL_UP_CATEGORY_HOURS, [category_rows.column(name).to_pylist()
                                             for name in ("window_start", "category", "country")])
        written += cur.rowcount
        cur.execute(ROLL_UP_PRODUCT_HOURS, [product_rows.column(name).to_pylist() for name in ("window_start", "product_id")])
        return written + cur.rowcount

    return write


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    transactions = topic_events(spark, settings, "transactions").withWatermark(
        "event_time", f"{settings.streaming.sales_watermark_seconds} seconds"
    )
    return [start_sink_query(minute_sales(sales_facts(transactions)), settings, options, "windows", write_window_sales)]


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
