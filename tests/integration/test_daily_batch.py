"""The daily batch on real Spark, FerretDB and SMTP: a generated backfill is published,
re-running a day changes nothing, and every injected defect blocks publishing with an email."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta

import pytest
from pymongo import MongoClient
from pyspark.sql import functions as F

from globalmart.generator.lake import write_lake
from globalmart.generator.traffic import TrafficConfig
from globalmart.quality_gates.gates import OUTPUT_GATE, RAW_DAY_GATE
from globalmart.warehouse import publish, sources, steps
from globalmart.warehouse.emails import send_failed_gate
from globalmart.warehouse.rfm import SEGMENTS
from tests.mail_helpers import inbox_of
from tests.warehouse_fixtures import END_DATE, warehouse_sandbox, warehouse_snapshot

DAYS = [END_DATE - timedelta(days=offset) for offset in (3, 2, 1)]
DEFECT_DAY = DAYS[-1]


def run_batch(spark, settings, days) -> dict:
    """The DAG's order: every Spark step (gates included), then publish; a failed gate's
    results are emailed as the DAG's gate operator does."""
    for name, step in steps.STEPS.items():
        try:
            step(spark, settings, days)
        except steps.GateFailed:
            send_failed_gate(RAW_DAY_GATE if name == "gate_raw" else OUTPUT_GATE, days, settings)
            raise
    database = MongoClient(settings.mongo.uri)[settings.mongo.database]
    return publish.publish(database, settings, days)


def with_recipient(settings, name: str):
    recipient = f"batch-{name}-{uuid.uuid4().hex[:8]}@globalmart.local"
    alerting = settings.alerting.model_copy(update={"recipients": [recipient]})
    return settings.model_copy(update={"alerting": alerting}), recipient


@pytest.fixture(scope="module")
def batch_env(platform, spark):
    with warehouse_sandbox(platform, "batch") as settings:
        write_lake(spark, settings, TrafficConfig(mode="backfill", days=len(DAYS), end_date=END_DATE, seed=11))
        yield settings


@pytest.fixture(scope="module")
def published(batch_env, spark):
    """The fixture days backfilled in one run; the warehouse's snapshot afterwards."""
    counts = run_batch(spark, batch_env, DAYS)
    return counts, warehouse_snapshot(batch_env)


def test_a_backfill_publishes_every_day_of_the_star_schema_rfm_products_and_trends(batch_env, published, spark):
    counts, _ = published
    database = MongoClient(batch_env.mongo.uri)[batch_env.mongo.database]
    lake = sources.read_lake(spark, batch_env, "transactions", DAYS[0], DAYS[-1])
    lines = dict(lake.groupBy("event_date").agg(F.sum(F.size("items"))).collect())
    for day in DAYS:
        key = int(day.strftime("%Y%m%d"))
        assert database.fact_sales.count_documents({"date_key": key}) == lines[day] > 0
        assert database.dim_date.find_one({"_id": key})["weekday_name"] == day.strftime("%A")
        rfm = list(database.customer_rfm.find({"analysis_date": publish.day_start(day)}))
        buyers = lake.where(F.col("event_date") <= day).select("user_id").distinct().count()
        assert len(rfm) == buyers  # the look-back (365 days) covers every earlier fixture day
        assert {r["rfm_segment"] for r in rfm} <= set(SEGMENTS)
        assert all(1 <= r[score] <= 5 for r in rfm for score in ("r_score", "f_score", "m_score"))
        report = counts[day.isoformat()]
        assert database.product_performance.count_documents({"date": publish.day_start(day)}) == report[
            "tables"]["product_performance"]["inserted"]
        assert [gate["gate"] for gate in report["gates"]] == [sources.RAW_DAY_GATE, sources.OUTPUT_GATE]
        assert all(gate["evaluated"] > 0 for gate in report["gates"])
        shop_day = database.sales_trends.find_one(
            {"granularity": "daily", "period_start": publish.day_start(day), "country": "ALL", "category": "ALL"})
        assert shop_day["transactions"] == lake.where(F.col("event_date") == day).count()
    # every customer once, with the span of all their purchases, the registry's name and
    # registration date, lifetime figures and the last day's segment, with its history
    assert database.dim_customer.count_documents({}) == lake.select("user_id").distinct().count()
    spans = {r.user_id: r for r in lake.groupBy("user_id").agg(
        F.min("event_time").alias("first"), F.max("event_time").alias("last"), F.count(F.lit(1)).alias("orders"),
        F.sum("total_amount").alias("revenue")).collect()}
    last_segments = {r["user_id"]: r["rfm_segment"] for r in database.customer_rfm.find(
        {"analysis_date": publish.day_start(DAYS[-1])}, {"user_id": 1, "rfm_segment": 1})}
    for customer in database.dim_customer.find().limit(200):
        span = spans[customer["_id"]]
        assert abs((customer["first_seen"] - span.first.replace(tzinfo=None)).total_seconds()) < 0.001
        assert abs((customer["last_seen"] - span.last.replace(tzinfo=None)).total_seconds()) < 0.001
        assert customer["name"] and customer["registration_date"] < customer["first_seen"]
        assert customer["lifetime_orders"] == span.orders and abs(customer["lifetime_revenue"] - span.revenue) < 0.01
        assert customer["rfm_segment"] == last_segments[customer["_id"]]
        history = customer["segment_history"]
        assert history[-1]["valid_to"] is None and history[-1]["rfm_segment"] == customer["rfm_segment"]
        assert customer["segment_since"] == history[-1]["valid_from"]
        assert all(a["valid_to"] == b["valid_from"] for a, b in zip(history, history[1:]))
    for product in database.dim_product.find().limit(100):
        assert product["name"].startswith(product["brand"] + " ")
        assert product["price_history"][-1] == {"list_price": product["list_price"],
                                                "valid_from": product["price_since"], "valid_to": None}
    # the weekly trend of the last day covers every fixture day of its week
    week_start = DAYS[-1] - timedelta(days=DAYS[-1].weekday())
    week = database.sales_trends.find_one(
        {"granularity": "weekly", "period_start": publish.day_start(week_start), "country": "ALL", "category": "ALL"})
    assert week["transactions"] == lake.where(F.col("event_date") >= week_start).count()
    indexed = {name for table in publish.INDEXES for name in database[table].index_information()}
    assert "date_key_1" in indexed and "analysis_date_1_rfm_segment_1" in indexed


def test_re_running_a_day_changes_nothing(batch_env, published, spark):
    _, before = published
    report = run_batch(spark, batch_env, [DAYS[1]])[DAYS[1].isoformat()]["tables"]
    assert warehouse_snapshot(batch_env) == before
    # what the published email shows: nothing written, every table unchanged
    for table in sources.DIMENSIONS:
        assert report[table]["inserted"] == report[table]["updated"] == 0 < report[table]["unchanged"], table
    for table in (sources.FACT_SALES, sources.CUSTOMER_RFM, sources.PRODUCT_PERFORMANCE, sources.SALES_TRENDS):
        assert report[table]["inserted"] == report[table]["replaced"] == 0 < report[table]["unchanged"], table


def _defective_lake(spark, settings, tmp_path, defect: str):
    """A copy of the fixture lake whose last day's transactions carry ``defect``."""
    lake = tmp_path / "lake"
    shutil.copytree(settings.lake_dir, lake)
    day_folder = lake / "transactions" / f"event_date={DEFECT_DAY.isoformat()}"
    if defect == "empty day":
        shutil.rmtree(day_folder)
    else:
        day = spark.read.parquet(str(settings.lake_dir / "transactions")).where(F.col("event_date") == DEFECT_DAY)
        first = F.col("transaction_id") == day.orderBy("transaction_id").first().transaction_id
        broken = {
            "null ids": day.withColumn("transaction_id", F.when(~first, F.col("transaction_id"))),
            "negative amounts": day.withColumn("total_amount", F.when(first, -F.col("total_amount"))
                                               .otherwise(F.col("total_amount"))),
            "duplicate transaction ids": day.unionByName(day.where(first)),
            "totals that do not add up": day.withColumn("total_amount", F.when(first, F.col("total_amount") + 1.0)
                                                        .otherwise(F.col("total_amount"))),
        }[defect].localCheckpoint()  # read fully before the folder it comes from is replaced
        shutil.rmtree(day_folder)
        broken.write.partitionBy("event_date", "event_hour").mode("append").parquet(str(lake / "transactions"))
    return settings.model_copy(update={"lake_dir": lake})


# defect → the expectation that must report it
DEFECTS = {
    "null ids": "raw_transactions.transaction_id: expect_column_values_to_not_be_null",
    "negative amounts": "raw_transactions.total_amount: expect_column_values_to_be_between",
    "duplicate transaction ids": "raw_transactions.transaction_id: expect_column_values_to_be_unique",
    "totals that do not add up": "raw_transactions.total_vs_lines: expect_column_values_to_be_between",
    "empty day": "raw_transactions: expect_table_row_count_to_be_between",
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_blocks_publishing_and_emails_the_failing_expectation(batch_env, published, spark, tmp_path,
                                                                         defect):
    _, before = published
    settings, recipient = with_recipient(_defective_lake(spark, batch_env, tmp_path, defect), defect.split()[0])
    with pytest.raises(steps.GateFailed, match="raw_day gate failed"):
        run_batch(spark, settings, [DEFECT_DAY])
    assert warehouse_snapshot(batch_env) == before
    (email,) = inbox_of(settings, recipient)
    assert f"raw-day gate failed for {DEFECT_DAY}" in email["subject"]
    assert DEFECTS[defect] in email["text"]
    docs_index = settings.great_expectations_dir / "data_docs" / "index.html"
    assert str(docs_index) in email["text"] and docs_index.exists()
    # the blocked day's staging holds no output that publishing could pick up
    with pytest.raises(publish.NotAudited):
        publish.check_audited(settings, DEFECT_DAY)


def test_a_failed_output_gate_blocks_publishing_after_the_etl(batch_env, published, spark, tmp_path):
    """A product the catalog does not know passes the raw gate, but its facts would be orphans."""
    _, before = published
    lake = tmp_path / "lake"
    shutil.copytree(batch_env.lake_dir, lake)
    day = spark.read.parquet(str(batch_env.lake_dir / "transactions")).where(F.col("event_date") == DEFECT_DAY)
    first = F.col("transaction_id") == day.orderBy("transaction_id").first().transaction_id
    unknown = F.transform("items", lambda item: item.withField("product_id", F.lit("P-NOT-IN-CATALOG")))
    broken = day.withColumn("items", F.when(first, unknown).otherwise(F.col("items"))).localCheckpoint()
    shutil.rmtree(lake / "transactions" / f"event_date={DEFECT_DAY.isoformat()}")
    broken.write.partitionBy("event_date", "event_hour").mode("append").parquet(str(lake / "transactions"))
    settings, recipient = with_recipient(batch_env.model_copy(update={"lake_dir": lake}), "orphan")

    with pytest.raises(steps.GateFailed, match="outputs gate failed"):
        run_batch(spark, settings, [DEFECT_DAY])
    assert warehouse_snapshot(batch_env) == before
    (email,) = inbox_of(settings, recipient)
    assert f"output gate failed for {DEFECT_DAY}" in email["subject"]
    assert "fact_sales.orphan_product_key: expect_column_values_to_be_null" in email["text"]
    assert "P-NOT-IN-CATALOG" in email["text"]
