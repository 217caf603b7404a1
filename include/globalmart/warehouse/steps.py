"""The daily batch's Spark steps, each over one or more days (a backfill), in DAG order:

1. ``gate_raw``: the raw-day gate on each day of the lake; a failure stops the run before any ETL;
2. ``etl``: ``fact_sales`` and the dimensions into staging (``dim_product`` as the products whose
   document changed, with the new state of the dimension: see
   :mod:`globalmart.warehouse.dimensions`);
3. ``rfm``: ``customer_rfm`` per analysis date (each day), over ``warehouse.rfm_lookback_days``,
   and ``dim_customer`` (its figures and current segment come from the same aggregation of the
   lake up to the day; staged like ``dim_product``);
4. ``products``: ``product_performance`` of each day;
5. ``trends``: the ``sales_trends`` periods (day, its week, its month) that contain each day,
   from every day of them in the lake;
6. ``gate_outputs``: the output gate on each day's staged tables.

Steps 2–5 read only the lake, not each other, yet run one after another: on two cores, four
Spark drivers side by side (each a JVM warming up its JIT) took longer than the four in turn.

The raw gate of a day empties its staging area first. A failed gate saves its results there
(with the Data Docs path) and raises ``GateFailed``: nothing is published, and the DAG's gate
operator emails the failing expectations (:func:`globalmart.warehouse.emails.send_failed_gate`).
Every step overwrites what it stages, so re-running one is safe.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from globalmart.settings import Settings
from globalmart.warehouse import sources
from globalmart.warehouse.dimensions import TRACKED, DimensionState, apply_snapshot, documents
from globalmart.warehouse.products import product_performance
from globalmart.warehouse.rfm import customer_figures, rfm_scores, window_customers
from globalmart.warehouse.star import (
    dim_customer,
    dim_date,
    dim_geography,
    dim_payment_method,
    dim_product,
    fact_sales,
    with_customer_registry,
    with_product_brands,
)
from globalmart.warehouse.trends import sales_trends

log = logging.getLogger(__name__)

RAW_TOPICS = ("transactions", "product_views", "cart_events")


class GateFailed(RuntimeError):
    """A quality gate failed: the run stops and nothing is published."""


def _gate(gate: str, days: Sequence[date], validate: Callable[[date], object], settings: Settings) -> None:
    """Validate each day and save every result; on any failure raise (the DAG's gate operator
    emails the saved failures: email goes through Airflow's SMTP connection, which a
    spark-submit has no access to)."""
    failed = []
    for day in days:
        result = validate(day)
        sources.save_gate_result(settings, result)
        if not result.success:
            failed.append(result)
    if failed:
        summary = "; ".join(f"{r.day}: {len(r.failures)} failed" for r in failed)
        raise GateFailed(f"{gate} gate failed ({summary}); Data Docs: {failed[0].docs_index}")


def gate_raw(spark: SparkSession, settings: Settings, days: Sequence[date]) -> None:
    from globalmart.quality_gates import trailing_daily_average, validate_raw_day
    from globalmart.quality_gates.gates import RAW_DAY_GATE

    warehouse = settings.warehouse

    def validate(day: date):
        # a run of the day starts from an empty staging area: nothing audited earlier survives
        shutil.rmtree(sources.staging_dir(settings, day), ignore_errors=True)
        raw = {topic: sources.read_lake(spark, settings, topic, day, day) for topic in RAW_TOPICS}
        history = sources.read_lake(spark, settings, "transactions", day - timedelta(days=warehouse.volume_trailing_days),
                                    day - timedelta(days=1), columns=["event_date"])
        trailing = trailing_daily_average(history, day, warehouse.volume_trailing_days)
        log.info("raw gate %s: trailing daily average %s transactions", day,
                 "none (no history)" if trailing is None else f"{trailing:,.0f}")
        return validate_raw_day(day, raw["transactions"], raw["product_views"], raw["cart_events"], trailing, settings)

    _gate(RAW_DAY_GATE, days, validate, settings)


def _stage(frame: DataFrame, settings: Settings, day: date, table: str) -> None:
    started = time.monotonic()
    rows = sources.write_staged(frame, settings, day, table)
    log.info("%s %s: %d rows staged (%.1f s)", day, table, rows, time.monotonic() - started)


def _empty_state(spark: SparkSession, snapshot: DataFrame, table: str) -> DimensionState:
    spec = TRACKED[table]
    attribute = snapshot.schema[spec.attribute]
    history = spark.createDataFrame([], T.StructType([
        snapshot.schema[spec.key], attribute, T.StructField("valid_from", T.DateType()),
        T.StructField("valid_to", T.DateType())]))
    return DimensionState(documents(snapshot.limit(0), history, spec), history)


def _stage_dimension(spark: SparkSession, settings: Settings, day: date, table: str, snapshot: DataFrame,
                     base: Path) -> Path:
    """Apply the day's ``snapshot`` of a stateful dimension to the state at ``base``: stage the
    changed documents as the day's ``table`` and the new state beside them; its path."""
    started = time.monotonic()
    stored = sources.read_state(spark, base)
    state = DimensionState(*stored) if stored else _empty_state(spark, snapshot, table)
    new_state, changed = apply_snapshot(state, snapshot, day, TRACKED[table])
    target = sources.staged_state_path(settings, day, table)
    new_state.history.write.mode("overwrite").parquet(str(target / "history"))
    new_state.current.write.mode("overwrite").parquet(str(target / "current"))
    (target / sources.BASE_FILE).write_text(sources.state_generation(base) or "")
    (target / sources.GENERATION_FILE).write_text(uuid.uuid4().hex)
    rows = sources.write_staged(changed, settings, day, table)
    log.info("%s %s: %d documents changed, state staged (%.1f s)", day, table, rows, time.monotonic() - started)
    return target


def etl(spark: SparkSession, settings: Settings, days: Sequence[date]) -> None:
    catalog = sources.read_catalog(spark, settings).cache()
    # each day builds on the published state, then on the previous day's in this run
    products_state = sources.published_state_path(settings, "dim_product")
    for day in days:
        transactions = sources.read_lake(spark, settings, "transactions", day, day).cache()
        facts = fact_sales(transactions)
        _stage(facts, settings, day, sources.FACT_SALES)
        sold = sources.read_staged(spark, settings, day, sources.FACT_SALES).select(
            F.col("product_key").alias("product_id")).distinct()
        snapshot = with_product_brands(dim_product(catalog.join(sold, "product_id", "left_semi"), day),
                                       settings.catalog, settings.generator).persist()
        products_state = _stage_dimension(spark, settings, day, "dim_product", snapshot, products_state)
        snapshot.unpersist()
        _stage(dim_date(spark, day, day, settings.catalog.countries), settings, day, "dim_date")
        _stage(dim_geography(spark, settings.catalog.countries, settings.catalog.country_utc_offsets),
               settings, day, "dim_geography")
        _stage(dim_payment_method(spark, settings.catalog.payment_methods), settings, day, "dim_payment_method")
        transactions.unpersist()
    catalog.unpersist()


def rfm(spark: SparkSession, settings: Settings, days: Sequence[date]) -> None:
    """``customer_rfm`` and ``dim_customer`` of each day, from one aggregation of the lake up to
    the day: the look-back window's figures for RFM, the lifetime ones for the dimension."""
    lookback = settings.warehouse.rfm_lookback_days
    customers_state = sources.published_state_path(settings, "dim_customer")
    for day in days:
        lake = sources.read_lake(spark, settings, "transactions", None, day,
                                 columns=["event_date", "event_time", "transaction_id", "user_id", "country",
                                          "total_amount"])
        figures = customer_figures(lake, day, lookback).persist()  # read by the cut points, the scores, the dimension
        scored = rfm_scores(window_customers(figures, day))
        _stage(scored, settings, day, sources.CUSTOMER_RFM)
        segments = sources.read_staged(spark, settings, day, sources.CUSTOMER_RFM)
        snapshot = with_customer_registry(dim_customer(figures, segments, day), settings.catalog,
                                          settings.generator).persist()
        customers_state = _stage_dimension(spark, settings, day, "dim_customer", snapshot, customers_state)
        snapshot.unpersist()
        figures.unpersist()


def products(spark: SparkSession, settings: Settings, days: Sequence[date]) -> None:
    for day in days:
        raw = {topic: sources.read_lake(spark, settings, topic, day, day) for topic in RAW_TOPICS}
        performance = product_performance(raw["transactions"], raw["product_views"], raw["cart_events"], day,
                                          settings.warehouse.performance_weights)
        _stage(performance, settings, day, sources.PRODUCT_PERFORMANCE)


def trend_history_start(day: date, settings: Settings) -> date:
    """The first day of history the trends of ``day``'s periods need: enough whole days, weeks
    and months before them for the moving averages and the period-over-period growth."""
    warehouse = settings.warehouse
    week_start = day - timedelta(days=day.weekday())
    month_start = day.replace(day=1)
    return min(
        day - timedelta(days=max(warehouse.daily_moving_average_days - 1, 1)),
        week_start - timedelta(weeks=max(warehouse.weekly_moving_average_weeks - 1, 1)),
        month_start - relativedelta(months=max(warehouse.monthly_moving_average_months - 1, 1)),
    )


def trend_periods_end(day: date) -> date:
    """The last day of the periods containing ``day``: the end of its week or month, whichever is later.

    The periods are built from every day of them the lake holds, so re-running an earlier day
    of a week or month does not shrink what a later run published for it."""
    week_end = day + timedelta(days=6 - day.weekday())
    month_end = day + relativedelta(day=31)
    return max(week_end, month_end)


def trends(spark: SparkSession, settings: Settings, days: Sequence[date]) -> None:
    for day in days:
        history = sources.read_lake(spark, settings, "transactions", trend_history_start(day, settings),
                                    trend_periods_end(day), columns=["event_date", "country", "items"])
        current = sales_trends(history, settings.warehouse.moving_average_periods).where(
            F.lit(day).between(F.col("period_start"), F.col("period_end")))
        _stage(current, settings, day, sources.SALES_TRENDS)


def gate_outputs(spark: SparkSession, settings: Settings, days: Sequence[date]) -> None:
    from globalmart.quality_gates import validate_outputs
    from globalmart.quality_gates.gates import OUTPUT_GATE

    def validate(day: date):
        staged = {table: sources.read_staged(spark, settings, day, table)
                  for table in (sources.FACT_SALES, sources.CUSTOMER_RFM, *sources.DIMENSIONS)}
        raw = sources.read_lake(spark, settings, "transactions", day, day)
        # a stateful dimension's staged table holds only its changed documents: the facts'
        # keys are looked up in its whole new state
        dimensions = {table: spark.read.parquet(str(sources.staged_state_path(settings, day, table) / "current"))
                      if table in sources.STATEFUL_DIMENSIONS else staged[table] for table in sources.DIMENSIONS}
        return validate_outputs(day, raw, staged[sources.FACT_SALES], staged[sources.CUSTOMER_RFM], dimensions, settings)

    _gate(OUTPUT_GATE, days, validate, settings)


STEPS: dict[str, Callable[[SparkSession, Settings, Sequence[date]], None]] = {
    "gate_raw": gate_raw, "etl": etl, "rfm": rfm, "products": products, "trends": trends,
    "gate_outputs": gate_outputs,
}
