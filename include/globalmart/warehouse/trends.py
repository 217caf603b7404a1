"""Sales trends: daily, weekly and monthly revenue, transactions, units and average order
value, by country × category, with ``ALL`` rows for each country's, each category's and the
shop's totals.

A transaction counts once in every series it touches: in its country's and the ``ALL``
country's, for each category of its lines and for ``ALL`` categories; the revenue and units
are those of the lines in the series' category. Weeks start on Monday (ISO), months on the 1st.

Each series has a row for every period from the first to the last period of the input, zero
when nothing sold, so that "previous period" and "last N periods" mean calendar periods:

- revenue_growth, transactions_growth: (this − previous) / previous, as a fraction
  (0.25 = +25 %); null for the first period and when the previous period is zero;
- revenue_moving_avg, transactions_moving_avg: mean over the last N periods including this
  one, N from settings (defaults: 7 days, 4 weeks, 3 months); null until N periods exist.

Periods are as complete as the input: the caller passes whole periods of history, and the
current week and month are to date.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from globalmart.warehouse.star import MONEY, PRICE, line_revenue

ALL = "ALL"
# granularity → (date_trunc unit, step between periods)
GRANULARITIES = {"daily": ("day", "INTERVAL 1 DAY"), "weekly": ("week", "INTERVAL 7 DAYS"),
                 "monthly": ("month", "INTERVAL 1 MONTH")}


def _daily_sales(transactions: DataFrame) -> DataFrame:
    """Revenue, transactions and units per (day, country or ALL, category or ALL)."""
    categories = F.array_union(F.array_distinct(F.transform("items", lambda item: item.category)), F.array(F.lit(ALL)))
    per_category = transactions.select("event_date", "country", "items", F.explode(categories).alias("category"))
    lines = F.filter("items", lambda item: (F.col("category") == ALL) | (item.category == F.col("category")))
    parts = per_category.select(
        "event_date",
        F.explode(F.array("country", F.lit(ALL))).alias("country"),
        "category",
        F.aggregate(lines, F.lit(0).cast(MONEY),
                    lambda total, item: (total + line_revenue(item)).cast(MONEY)).alias("revenue"),
        F.aggregate(lines, F.lit(0).cast("long"), lambda total, item: total + item.quantity).alias("units"),
    )
    return parts.groupBy("event_date", "country", "category").agg(
        F.sum("revenue").cast(MONEY).alias("revenue"),
        F.count(F.lit(1)).alias("transactions"),
        F.sum("units").alias("units"),
    )


def _periods(daily: DataFrame, granularity: str) -> DataFrame:
    """The daily sales summed into ``granularity``'s periods, every period of every series present."""
    unit, step = GRANULARITIES[granularity]
    sales = daily.groupBy(
        F.date_trunc(unit, "event_date").cast("date").alias("period_start"), "country", "category"
    ).agg(*(F.sum(c).alias(c) for c in ("revenue", "transactions", "units")))
    calendar = sales.agg(F.min("period_start").alias("first"), F.max("period_start").alias("last")).select(
        F.explode(F.sequence("first", "last", F.expr(step))).alias("period_start")
    )
    grid = calendar.crossJoin(sales.select("country", "category").distinct())
    return (
        grid.join(sales, ["period_start", "country", "category"], "left")
        .fillna(0, subset=["transactions", "units"])
        .select(
            F.lit(granularity).alias("granularity"),
            "period_start",
            F.date_sub(F.col("period_start") + F.expr(step), 1).alias("period_end"),
            "country",
            "category",
            F.coalesce("revenue", F.lit(0)).cast(MONEY).alias("revenue"),
            "transactions",
            "units",
        )
    )


def _trend(daily: DataFrame, granularity: str, window_periods: int) -> DataFrame:
    periods = _periods(daily, granularity)
    series = Window.partitionBy("country", "category").orderBy("period_start")
    recent = series.rowsBetween(-(window_periods - 1), Window.currentRow)

    def growth(column: str) -> Column:
        previous = F.lag(column).over(series)
        return F.round(F.try_divide(F.col(column) - previous, previous).cast("double"), 4)

    def moving_average(column: str) -> Column:
        return F.when(F.count(F.lit(1)).over(recent) == window_periods, F.avg(column).over(recent))

    return periods.select(
        "granularity", "period_start", "period_end", "country", "category", "revenue", "transactions", "units",
        F.try_divide("revenue", "transactions").cast(PRICE).alias("avg_order_value"),
        growth("revenue").alias("revenue_growth"),
        growth("transactions").alias("transactions_growth"),
        moving_average("revenue").cast(MONEY).alias("revenue_moving_avg"),
        F.round(moving_average("transactions"), 2).alias("transactions_moving_avg"),
    )


def sales_trends(transactions: DataFrame, moving_average_periods: Mapping[str, int]) -> DataFrame:
    """Lake transactions (whole periods of history) → one row per granularity, period and
    series; ``moving_average_periods`` maps each granularity (daily, weekly, monthly) to its N.

    Columns: granularity, period_start, period_end, country, category, revenue,
    transactions, units, avg_order_value (null without transactions), revenue_growth,
    transactions_growth, revenue_moving_avg, transactions_moving_avg.
    Key: (granularity, period_start, country, category).
    """
    # small, and read by every granularity twice (its calendar and its totals): computed once
    daily = _daily_sales(transactions).cache()
    trends = [_trend(daily, granularity, moving_average_periods[granularity]) for granularity in GRANULARITIES]
    return reduce(DataFrame.unionByName, trends)
