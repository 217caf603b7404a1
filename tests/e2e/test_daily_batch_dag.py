"""daily_batch end to end with dag.test() through the LocalExecutor, as the scheduler runs it
(each task in its own supervised process, without metadata-database access): the trigger
form's day goes through every spark-submit step and both gates into MongoDB, and the summary
email arrives."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pymongo import MongoClient

from globalmart.dag_parsing import parse_dag_files
from globalmart.generator.lake import write_lake
from globalmart.generator.traffic import TrafficConfig
from globalmart.settings import ENV_PREFIX, env_overrides, get_settings
from globalmart.warehouse.sources import TABLES
from tests.mail_helpers import inbox_of
from tests.warehouse_fixtures import END_DATE, SMALL_CATALOG, warehouse_sandbox

DAY = END_DATE - timedelta(days=1)


@pytest.fixture
def batch_env(platform, spark, monkeypatch):
    """A private lake, staging area, catalog and warehouse, seen by the DAG's tasks through the environment."""
    recipient = f"daily-batch-{uuid.uuid4().hex[:8]}@globalmart.local"
    with warehouse_sandbox(platform, "dag") as settings:
        write_lake(spark, settings, TrafficConfig(mode="backfill", days=2, end_date=END_DATE, seed=5))
        for name, value in env_overrides(settings).items():
            monkeypatch.setenv(name, value)
        for name, value in SMALL_CATALOG.items():
            monkeypatch.setenv(f"{ENV_PREFIX}CATALOG__{name.upper()}", str(value))
        monkeypatch.setenv(f"{ENV_PREFIX}ALERTING__RECIPIENTS", f'["{recipient}"]')
        get_settings.cache_clear()
        try:
            yield settings, recipient
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()


def test_the_dag_publishes_a_triggered_day_and_emails_the_summary(batch_env):
    settings, recipient = batch_env
    dag = parse_dag_files().dags["daily_batch"]
    (deadline,) = dag.deadline
    assert deadline.interval == timedelta(hours=4) and type(deadline.reference).__name__ == "DagRunLogicalDateDeadline"
    # dag.test() crashes when a successful run prunes its deadlines (apache/airflow#73428, fix
    # in PR #73430); the scheduler's path is unaffected, so the test run goes without one
    dag.deadline = None
    # the lake was written directly, not by the raw archiver: nothing to wait for
    run = dag.test(run_conf={"start_date": DAY.isoformat(), "end_date": DAY.isoformat(), "lake_from_archiver": False},
                   use_executor=True)

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert set(states) == {"plan_days", "wait_for_complete_lake", "gate_raw", "etl", "rfm", "product_performance",
                           "sales_trends", "gate_outputs", "publish", "notify"}
    database = MongoClient(settings.mongo.uri)[settings.mongo.database]
    published = next(ti for ti in run.get_task_instances() if ti.task_id == "publish").xcom_pull(task_ids="publish")
    assert database.fact_sales.count_documents({"date_key": int(DAY.strftime("%Y%m%d"))}) == (
        published[DAY.isoformat()]["tables"]["fact_sales"]["inserted"]) > 0
    assert all(database[table].estimated_document_count() > 0 for table in TABLES)

    assert [m["subject"] for m in inbox_of(settings, recipient)] == [
        f"[GlobalMart] Daily batch published {DAY.isoformat()}"]
