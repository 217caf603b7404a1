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

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from globalmart.settings import Catalog as CatalogSettings
from globalmart.settings import GeneratorSettings

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


def dim_customer(figures: DataFrame, segments: DataFrame, day: date) -> DataFrame:
    """The day's customer snapshot: every customer scored by the day's RFM (``segments``:
    user_id, rfm_segment; the customers who bought in the look-back window) with their
    ``figures`` (:func:`globalmart.warehouse.rfm.customer_figures`) → customer_key, country (of
    the latest transaction), first_seen, last_seen (event times), lifetime_orders,
    lifetime_revenue (over the lake up to the day), rfm_segment (current), as_of (``day``).

    The registry's name and registration date are added by :func:`with_customer_registry`;
    :mod:`globalmart.warehouse.dimensions` keeps the segment's history."""
    return figures.join(segments.select("user_id", "rfm_segment"), "user_id").select(
        F.col("user_id").alias("customer_key"), "country", "first_seen", "last_seen", "lifetime_orders",
        "lifetime_revenue", "rfm_segment", F.lit(day).alias("as_of"))


def _registry_lookup(frame: DataFrame, lookup, added: str) -> DataFrame:
    """``frame`` with the columns of ``added`` (a DDL schema) from ``lookup(shop, batch)``,
    a pyarrow function over the shop's catalog, run in the Python workers (the catalog is
    built once per worker from the settings, deterministic for its seed)."""
    schema = T.StructType([*frame.schema.fields, *T._parse_datatype_string(added).fields])

    def batches(source):
        for batch in source:
            found = lookup(batch)
            yield pa.RecordBatch.from_arrays([*batch.columns, *(c.combine_chunks() for c in found.columns)],
                                             names=[*batch.schema.names, *found.schema.names])

    return frame.mapInArrow(batches, schema)


def with_customer_registry(snapshot: DataFrame, catalog: CatalogSettings, behaviour: GeneratorSettings) -> DataFrame:
    """``snapshot`` (with customer_key) plus name and registration_date from the shop's
    registry (the generator's catalog: users are numbered ``U00000001`` in catalog order);
    nulls for a customer it does not know."""
    catalog_json, behaviour_json = catalog.model_dump_json(), behaviour.model_dump_json()

    def lookup(batch: pa.RecordBatch) -> pa.Table:
        from globalmart.generator.catalog import customer_attributes, get_catalog

        shop = get_catalog(CatalogSettings.model_validate_json(catalog_json),
                           GeneratorSettings.model_validate_json(behaviour_json))
        return customer_attributes(shop, batch.column(batch.schema.get_field_index("customer_key"))).select(
            ["name", "registration_date"])

    found = _registry_lookup(snapshot, lookup, "name string, registration_date date")
    return found.select("customer_key", "name", "registration_date",
                        *(c for c in snapshot.columns if c != "customer_key"))


def with_product_brands(products: DataFrame, catalog: CatalogSettings, behaviour: GeneratorSettings) -> DataFrame:
    """``products`` (with product_key, after name) plus brand from the shop's catalog; null for
    a product it does not know."""
    catalog_json, behaviour_json = catalog.model_dump_json(), behaviour.model_dump_json()

    def lookup(batch: pa.RecordBatch) -> pa.Table:
        from globalmart.generator.catalog import get_catalog, product_brands

        shop = get_catalog(CatalogSettings.model_validate_json(catalog_json),
                           GeneratorSettings.model_validate_json(behaviour_json))
        return pa.table({"brand": product_brands(shop, batch.column(batch.schema.get_field_index("product_key")))})

    found = _registry_lookup(products, lookup, "brand string")
    columns = [c for c in products.columns if c != "brand"]
    at = columns.index("name") + 1 if "name" in columns else 1
    return found.select(*columns[:at], "brand", *columns[at:])


def dim_product(catalog: DataFrame, day: date | None = None) -> DataFrame:
    """The product catalog (the ``product_catalog`` table's columns) → product_key, name,
    category (``"Department > Subcategory"``), department, subcategory, list_price, rating;
    and as_of (``day``) when given: the day's snapshot of those products (the brand comes
    from :func:`with_product_brands`, the price's history from
    :mod:`globalmart.warehouse.dimensions`)."""
    parts = F.split("category", " > ", 2)
    columns = [
        F.col("product_id").alias("product_key"),
        "name",
        "category",
        parts[0].alias("department"),
        F.try_element_at(parts, F.lit(2)).alias("subcategory"),
        F.col("price").cast(PRICE).alias("list_price"),
        F.col("rating").cast("decimal(2,1)").alias("rating"),
    ]
    return catalog.select(*columns, *([F.lit(day).alias("as_of")] if day else []))


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
