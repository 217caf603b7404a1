"""What the gates validate: the datasets plus audit columns computed in Spark.

Great Expectations checks one column (or the table) at a time, so facts that span a row's
nested lines or another table are computed here first and validated as plain columns:

- transactions: ``line_count``, ``min_line_quantity``, ``min_line_unit_price`` of the ``items``
  array, and ``total_vs_lines`` = |total_amount − Σ quantity × unit_price| in exact decimals
  (cents, as ``fact_sales`` computes revenue: a float difference of one cent can come out
  as 0.0099…); ``hour_of_day`` (UTC) of event_time and ``transactions_in_hour``, the day's
  transactions in that hour (an empty hour has no rows: it shows as an hour missing);
- fact_sales: ``orphan_<key>`` for each dimension key, the key when its dimension has no such
  row and null otherwise, so the unexpected values are the orphan keys themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from globalmart.warehouse.star import MONEY, line_revenue

LINE_COUNT = "line_count"
MIN_LINE_QUANTITY = "min_line_quantity"
MIN_LINE_UNIT_PRICE = "min_line_unit_price"
TOTAL_VS_LINES = "total_vs_lines"
HOUR_OF_DAY = "hour_of_day"
TRANSACTIONS_IN_HOUR = "transactions_in_hour"
HOURS = list(range(24))

# fact_sales key column → the dimension table holding it (under the same column name)
FACT_DIMENSIONS = {
    "date_key": "dim_date",
    "customer_key": "dim_customer",
    "product_key": "dim_product",
    "country": "dim_geography",
    "payment_method": "dim_payment_method",
}


def orphan_column(key: str) -> str:
    return f"orphan_{key}"


def hourly_counts(transactions: DataFrame) -> list[int]:
    """Transactions in each hour (UTC) of the day, hour 0 first."""
    counts = dict(transactions.groupBy(F.hour("event_time").alias("hour")).count().collect())
    return [counts.get(hour, 0) for hour in HOURS]


def hourly_minimum(counts: list[int], min_share: float) -> int:
    """Transactions every hour must hold: ``min_share`` of the day's hourly average, rounded
    down, so that an empty hour is only a failure on a day busy enough to make it implausible."""
    return math.floor(min_share * sum(counts) / len(HOURS))


def audited_transactions(transactions: DataFrame, counts: list[int]) -> DataFrame:
    """Lake transactions with the line and hour audit columns (see the module docstring);
    ``counts``: the day's ``hourly_counts``."""
    per_hour = F.create_map(*(F.lit(value) for hour, count in enumerate(counts) for value in (hour, count)))
    lines_total = F.aggregate(
        F.transform("items", line_revenue), F.lit(0).cast(MONEY), lambda total, revenue: (total + revenue).cast(MONEY)
    )
    return transactions.withColumns({
        LINE_COUNT: F.array_size("items"),
        MIN_LINE_QUANTITY: F.array_min("items.quantity"),
        MIN_LINE_UNIT_PRICE: F.array_min("items.unit_price"),
        TOTAL_VS_LINES: F.abs(F.col("total_amount").cast(MONEY) - lines_total),
        HOUR_OF_DAY: F.hour("event_time"),
        TRANSACTIONS_IN_HOUR: F.element_at(per_hour, F.hour("event_time")),
    })


def audited_fact_sales(fact_sales: DataFrame, dimensions: Mapping[str, DataFrame]) -> DataFrame:
    """``fact_sales`` with an ``orphan_<key>`` column per dimension key.

    ``dimensions``: table name → DataFrame, one for each table of ``FACT_DIMENSIONS``.
    """
    missing = sorted(set(FACT_DIMENSIONS.values()) - set(dimensions))
    if missing:
        raise ValueError(f"the output gate needs every dimension of fact_sales; missing: {', '.join(missing)}")
    audited = fact_sales
    for key, table in FACT_DIMENSIONS.items():
        known = f"known_{key}"
        keys = dimensions[table].select(F.col(key).alias(known)).distinct()
        audited = (
            audited.join(keys, audited[key] == keys[known], "left")
            .withColumn(orphan_column(key), F.when(F.col(known).isNull(), F.col(key)))
            .drop(known)
        )
    return audited


def line_count(transactions: DataFrame) -> int:
    """Line items in ``transactions``: the rows ``fact_sales`` must have for them."""
    return transactions.select(F.coalesce(F.sum(F.array_size("items")), F.lit(0))).first()[0]


def trailing_daily_average(transactions: DataFrame, day: date, days: int) -> float | None:
    """Mean transactions per day over the ``days`` days before ``day`` that have any
    (``transactions``: the lake dataset, filtered here by its ``event_date`` partition);
    None without such a day. Days without data are skipped: an outage must not lower the
    band the next day is held to."""
    first, last = day - timedelta(days=days), day - timedelta(days=1)
    window = transactions.where(F.col("event_date").between(F.lit(first), F.lit(last)))
    average = window.groupBy("event_date").count().select(F.avg("count")).first()[0]
    return None if average is None else float(average)


def volume_band(trailing_average: float | None, min_ratio: float, max_ratio: float) -> tuple[int, int | None]:
    """(min, max) transactions of a plausible day; an empty day is never plausible, and
    without history there is no upper bound."""
    if trailing_average is None:
        return 1, None
    return max(1, math.floor(trailing_average * min_ratio)), max(1, math.ceil(trailing_average * max_ratio))
