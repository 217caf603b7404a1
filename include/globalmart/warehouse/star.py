"""The star schema: ``fact_sales`` at line-item grain and its dimensions.

Keys are natural and deterministic, so loading a day twice gives identical rows:

- ``fact_sales``: (``transaction_id``, ``line_number``); ``date_key`` is ``yyyymmdd`` of the
  event date (UTC), ``customer_key`` the user id, ``product_key`` the product id, and the
  country and payment method name their dimension rows.
- ``dim_date``: ``date_key``; ``dim_customer``: ``customer_key``; ``dim_product``:
  ``product_key``; ``dim_geography``: ``country``; ``dim_payment_method``: ``payment_method``.

Money is exact: prices are ``decimal(12,2)`` and revenues ``decimal(18,2)``, a line's revenue
is quantity × unit price computed in decimals, never in floating point.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.warehouse.holiday_calendar import public_holidays

PRICE = "decimal(12,2)"
MONEY = "decimal(18,2)"
HOLIDAYS_TYPE = "array<struct<country:string,name:string>>"

# reference attributes of the settings' countries and payment methods (others get nulls)
COUNTRY_ATTRIBUTES = {
    "USA": ("US", "North America"),
    "UK": ("GB", "Europe"),
    "Canada": ("CA", "North America"),
    "Germany": ("DE", "Europe"),
    "France": ("FR", "Europe"),
}
PAYMENT_ATTRIBUTES = {
    "credit_card": ("Credit card", "card"),
    "debit_card": ("Debit card", "card"),
    "paypal": ("PayPal", "digital wallet"),
    "apple_pay": ("Apple Pay", "digital wallet"),
    "google_pay": ("Google Pay", "digital wallet"),
}


def date_key(day: Column) -> Column:
    """``yyyymmdd`` of a date as an int: 2026-11-20 → 20261120."""
    return (F.year(day) * 10000 + F.month(day) * 100 + F.dayofmonth(day)).cast("int")


def line_revenue(item: Column) -> Column:
    """Exact revenue of a transaction line (a struct of the contract's ``LineItem``)."""
    return (item.quantity * item.unit_price.cast(PRICE)).cast(MONEY)


def fact_sales(transactions: DataFrame) -> DataFrame:
    """Lake transactions → one row per line item.

    Columns: transaction_id, line_number (1-based position in ``items``), date_key,
    event_time, customer_key, product_key, country, payment_method, quantity, unit_price,
    revenue. A transaction's revenues add up to its lines exactly.
    """
    lines = transactions.select(
        "transaction_id", "event_date", "event_time", "user_id", "country", "payment_method",
        F.posexplode("items").alias("position", "item"),
    )
    return lines.select(
        "transaction_id",
        (F.col("position") + 1).cast("int").alias("line_number"),
        date_key(F.col("event_date")).alias("date_key"),
        "event_time",
        F.col("user_id").alias("customer_key"),
        F.col("item.product_id").alias("product_key"),
        "country",
        "payment_method",
        F.col("item.quantity").cast("int").alias("quantity"),
        F.col("item.unit_price").cast(PRICE).alias("unit_price"),
        line_revenue(F.col("item")).alias("revenue"),
    )


def dim_date(spark: SparkSession, first_day: date, last_day: date, countries: list[str]) -> DataFrame:
    """One row per day from ``first_day`` to ``last_day``.

    Columns: date_key, date, day (of month), day_of_week (ISO, Monday = 1), weekday_name,
    is_weekend, week (ISO week number), week_start (its Monday), month, month_name, quarter,
    year, holidays (array of (country, name) among ``countries``, see
    :mod:`globalmart.warehouse.holiday_calendar`), is_holiday (a holiday in any of them).
    """
    days = spark.range(1).select(F.explode(F.sequence(F.lit(first_day), F.lit(last_day))).alias("date"))
    holidays = spark.createDataFrame(
        public_holidays(countries, first_day.year, last_day.year), "date date, country string, name string"
    ).groupBy("date").agg(F.sort_array(F.collect_list(F.struct("country", "name"))).alias("holidays"))
    day = F.col("date")
    return days.join(holidays, "date", "left").select(
        date_key(day).alias("date_key"),
        "date",
        F.dayofmonth(day).alias("day"),
        (F.weekday(day) + 1).alias("day_of_week"),
        F.date_format(day, "EEEE").alias("weekday_name"),
        (F.weekday(day) >= 5).alias("is_weekend"),
        F.weekofyear(day).alias("week"),
        F.date_trunc("week", day).cast("date").alias("week_start"),
        F.month(day).alias("month"),
        F.date_format(day, "MMMM").alias("month_name"),
        F.quarter(day).alias("quarter"),
        F.year(day).alias("year"),
        F.coalesce("holidays", F.array().cast(HOLIDAYS_TYPE)).alias("holidays"),
        F.col("holidays").isNotNull().alias("is_holiday"),
    )


def dim_customer(transactions: DataFrame) -> DataFrame:
    """Customers seen in ``transactions``: customer_key (the user id), country (of the latest
    transaction), first_seen, last_seen (event times).

    Rows of successive days merge by the earliest ``first_seen`` and the latest ``last_seen``,
    so loading a day twice changes nothing.
    """
    latest = F.struct("event_time", "transaction_id")  # ties broken by id: deterministic
    return transactions.groupBy("user_id").agg(
        F.max_by("country", latest).alias("country"),
        F.min("event_time").alias("first_seen"),
        F.max("event_time").alias("last_seen"),
    ).select(F.col("user_id").alias("customer_key"), "country", "first_seen", "last_seen")


def dim_product(catalog: DataFrame) -> DataFrame:
    """The product catalog (the ``product_catalog`` table's columns) → product_key, name,
    category (``"Department > Subcategory"``), department, subcategory, list_price, rating."""
    parts = F.split("category", " > ", 2)
    return catalog.select(
        F.col("product_id").alias("product_key"),
        "name",
        "category",
        parts[0].alias("department"),
        F.try_element_at(parts, F.lit(2)).alias("subcategory"),
        F.col("price").cast(PRICE).alias("list_price"),
        F.col("rating").cast("decimal(2,1)").alias("rating"),
    )


def dim_geography(spark: SparkSession, countries: list[str], utc_offsets: list[int]) -> DataFrame:
    """The shop's countries (settings ``catalog.countries`` and ``country_utc_offsets``):
    country, iso_code, region, utc_offset (hours)."""
    rows = [(country, *COUNTRY_ATTRIBUTES.get(country, (None, None)), offset)
            for country, offset in zip(countries, utc_offsets, strict=True)]
    return spark.createDataFrame(rows, "country string, iso_code string, region string, utc_offset int")


def dim_payment_method(spark: SparkSession, payment_methods: list[str]) -> DataFrame:
    """The accepted payment methods (settings ``catalog.payment_methods``): payment_method,
    name (for display), kind (``card`` or ``digital wallet``)."""
    rows = [(method, *PAYMENT_ATTRIBUTES.get(method, (method, None))) for method in payment_methods]
    return spark.createDataFrame(rows, "payment_method string, name string, kind string")
