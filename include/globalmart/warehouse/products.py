"""Product performance of one day, from the lake's transactions, product views and cart events.

Per product with any activity that day (a sale, a view or a cart add):

- units_sold, total_revenue (exact decimal), orders (transactions containing it) and
  avg_price (revenue per unit sold: the price actually paid, after any mix of prices);
- views: product view events of any action (page view, or a search/filter/compare leading to it);
- conversion_rate = converted_sessions / view_sessions: of the sessions that viewed the
  product, the share that also bought it (null without views; a purchase in a session
  without a view of the product does not count, so the rate stays within 0..1);
- cart_adds: cart ``add`` events;
- rank_in_category: by revenue, 1 = best, equal revenues share a rank;
- performance_score, 0..100: the weighted mean of the product's percentile ranks
  (``percent_rank`` among the day's products, 0 = lowest, 1 = highest) in revenue, units,
  conversion rate (no views counts as 0), views and cart adds, × 100. The weights are
  settings (``warehouse.performance_weights``) and only their ratios matter.

Category is the one the events carry (the catalog's); key: (date, product_id).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from globalmart.settings import PerformanceWeights
from globalmart.warehouse.star import MONEY, PRICE, date_key, line_revenue

PRODUCT = ["product_id", "category"]


def _sales(transactions: DataFrame) -> DataFrame:
    lines = transactions.select("transaction_id", F.explode("items").alias("item"))
    return lines.groupBy(F.col("item.product_id").alias("product_id"), F.col("item.category").alias("category")).agg(
        F.sum("item.quantity").cast("long").alias("units_sold"),
        F.sum(line_revenue(F.col("item"))).cast(MONEY).alias("total_revenue"),
        F.count_distinct("transaction_id").alias("orders"),
    )


def _views(transactions: DataFrame, product_views: DataFrame) -> DataFrame:
    """Views and viewing sessions per product, and how many of those sessions bought it."""
    bought = transactions.select("session_id", F.explode("items.product_id").alias("product_id")).distinct()
    viewing_sessions = product_views.groupBy(*PRODUCT, "session_id").agg(F.count(F.lit(1)).alias("views"))
    return (
        viewing_sessions.join(bought.withColumn("bought", F.lit(True)), ["product_id", "session_id"], "left")
        .groupBy(*PRODUCT)
        .agg(
            F.sum("views").alias("views"),
            F.count(F.lit(1)).alias("view_sessions"),
            F.count("bought").alias("converted_sessions"),
        )
    )


def _cart_adds(cart_events: DataFrame) -> DataFrame:
    adds = cart_events.where(F.col("action") == "add")
    return adds.groupBy(*PRODUCT).agg(F.count(F.lit(1)).alias("cart_adds"))


def product_performance(transactions: DataFrame, product_views: DataFrame, cart_events: DataFrame, day: date,
                        weights: PerformanceWeights) -> DataFrame:
    """The lake's events (rows of other days are ignored) → one row per product active on ``day``.

    Columns: date, date_key, product_id, category, department, units_sold, total_revenue,
    orders, avg_price, views, view_sessions, converted_sessions, conversion_rate, cart_adds,
    rank_in_category, performance_score (see the module docstring for each definition).
    """
    on_day = F.col("event_date") == F.lit(day)
    transactions, product_views, cart_events = (df.where(on_day) for df in (transactions, product_views, cart_events))
    activity = (
        _sales(transactions)
        .join(_views(transactions, product_views), PRODUCT, "full")
        .join(_cart_adds(cart_events), PRODUCT, "full")
        .fillna(0, subset=["units_sold", "orders", "views", "view_sessions", "converted_sessions", "cart_adds"])
        .withColumn("total_revenue", F.coalesce("total_revenue", F.lit(0).cast(MONEY)))
        .withColumn("conversion_rate", F.round(F.try_divide("converted_sessions", "view_sessions").cast("double"), 4))
    )
    ranked = {
        "revenue": "total_revenue", "units": "units_sold", "conversion": F.coalesce("conversion_rate", F.lit(0.0)),
        "views": "views", "cart_adds": "cart_adds",
    }
    weight_of = weights.model_dump()
    score = sum(F.percent_rank().over(Window.orderBy(column)) * weight_of[name] for name, column in ranked.items())
    return activity.select(
        F.lit(day).alias("date"),
        date_key(F.lit(day)).alias("date_key"),
        "product_id",
        "category",
        F.split("category", " > ", 2)[0].alias("department"),
        "units_sold",
        "total_revenue",
        "orders",
        F.try_divide("total_revenue", "units_sold").cast(PRICE).alias("avg_price"),
        "views",
        "view_sessions",
        "converted_sessions",
        "conversion_rate",
        "cart_adds",
        F.rank().over(Window.partitionBy("category").orderBy(F.desc("total_revenue"))).alias("rank_in_category"),
        F.round(score * 100 / sum(weight_of.values()), 2).alias("performance_score"),
    )
