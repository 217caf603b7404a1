"""The daily 02:00 batch: the lake's previous day → a gated star-schema warehouse in MongoDB."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import DAG, Param, task
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
from airflow.timetables.trigger import CronTriggerTimetable
from globalmart_quality_gates import QualityGateSparkSubmitOperator
from lake_completeness.sensors import LakeCompletenessSensor

from globalmart.assets import lake_datasets, product_catalog, warehouse_collection, warehouse_collections
from globalmart.dag_defaults import default_args
from globalmart.settings import get_settings
from globalmart.spark import application, submit_options
from globalmart.warehouse.schedule import deadline_after_start

settings = get_settings()
warehouse = settings.warehouse
BATCH_JOB = "batch/daily_batch.py"
START = "{{ ti.xcom_pull(task_ids='plan_days')['start'] }}"
END = "{{ ti.xcom_pull(task_ids='plan_days')['end'] }}"


def spark_step(step: str, **kwargs) -> dict:
    """Arguments of one step's spark-submit over the run's days."""
    return {
        "task_id": step, "conn_id": "spark_default", "application": application(BATCH_JOB),
        "name": f"daily_batch.{step}", "application_args": [step, "--start", START, "--end", END],
        **submit_options(settings), **kwargs,
    }


with DAG(
    dag_id="daily_batch",
    schedule=CronTriggerTimetable(f"0 {warehouse.schedule_hour} * * *", timezone=warehouse.schedule_timezone),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["warehouse", "batch", "spark", "mongodb", "great_expectations"],
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=deadline_after_start(warehouse),
        callback=AsyncCallback(SmtpNotifier, kwargs={
            "to": settings.alerting.recipients,
            "from_email": settings.smtp.sender,
            "smtp_conn_id": settings.alerting.smtp_conn_id,
            "subject": f"{settings.alerting.subject_prefix} daily_batch is late: not done "
                       f"{deadline_after_start(warehouse)} after its start",
            "html_content": "<p>The daily batch run {{ dag_run.run_id }} has not finished by its deadline "
                            f"({warehouse.deadline_hour:02d}:00 {warehouse.schedule_timezone} for the scheduled run). "
                            "Analysts' warehouse is not yet current: check the run in the Airflow UI.</p>",
        }),
    ),
    params={
        "start_date": Param(None, type=["null", "string"], format="date",
                            description="First day to process (YYYY-MM-DD). Empty with end_date empty: the day "
                                        "before the run's date (what the 02:00 schedule does)."),
        "end_date": Param(None, type=["null", "string"], format="date",
                          description="Last day to process, inclusive (YYYY-MM-DD). Empty: start_date only. "
                                      "A range re-runs or backfills every day in it; today is refused."),
        "lake_from_archiver": Param(True, type="boolean",
                                    description="The days' lake was written by the streaming raw archiver: wait until "
                                                "it has archived them whole. Off for days loaded into the lake "
                                                "directly (a backfill written with globalmart.generator.lake)."),
    },
    doc_md=f"""
### Daily batch (02:00 {warehouse.schedule_timezone})

Builds the analysts' warehouse in MongoDB (`{settings.mongo.database}`) from the lake's raw
events, behind two Great Expectations gates (write-audit-publish). A scheduled run processes
the previous day; **Trigger** with `start_date` / `end_date` to run or re-run any past days.

1. **plan_days** — the days of this run.
2. **wait_for_complete_lake** — waits (deferred, in the triggerer) until the raw archiver has
   archived, on every partition of every topic the batch reads, all the broker received up to
   {warehouse.completeness_grace_seconds:.0f} s after the last day's end; after
   {warehouse.completeness_timeout_seconds / 3600:g} h it emails which topic and partition is behind, by how
   many records, and fails. Off with `lake_from_archiver` for days loaded into the lake directly.
3. **gate_raw** — the raw-day gate on each day: schema, ids not null and unique, amounts ≥ 0,
   totals equal their lines within a cent, known countries and payment methods, event times
   inside the day, volume within {warehouse.volume_min_ratio}–{warehouse.volume_max_ratio}× the trailing
   {warehouse.volume_trailing_days}-day average, every hour with at least {warehouse.hourly_min_share:g}× the
   day's hourly average. A failure stops the run before any ETL.
4. **etl** — `fact_sales` (line items), `dim_product` (name, brand, department, category, list
   price with its history) and `dim_date`, `dim_geography`, `dim_payment_method` into the staging area.
5. **rfm** — `customer_rfm` per analysis date over {warehouse.rfm_lookback_days} days (scores from cut
   points, named segments), and `dim_customer` (name, registration date, country, lifetime
   figures, current segment with its history).
6. **product_performance** — units, revenue, views, conversion, cart adds, rank in category, score.
7. **sales_trends** — daily, weekly, monthly series with growth and moving averages.
8. **gate_outputs** — facts reconcile with the raw day, no orphan keys, RFM scores and segments valid.
9. **publish** — writes what changed into MongoDB: new and changed documents of the dimensions
   (customers with their segment history, products with their price history), a day-keyed
   table's day when its content changed; a re-run of an unchanged day writes nothing.
10. **notify** — emails what was published, with links to the dashboards.

Lineage (the **Assets** view): `wait_for_complete_lake` records an event on the lake datasets
(`lake.*`, written by `streaming_pipeline`'s raw archiver) when the day is archived whole;
`publish` reads them and `postgres.product_catalog`, and records an event on each warehouse
collection (`warehouse.*`) with what it inserted, updated and left unchanged.

A failed gate fails the run without retries, leaves the published warehouse untouched and
emails the failing expectations with the path of the Data Docs built for the run. A run not
done by {warehouse.deadline_hour:02d}:00 triggers a late-run email (Airflow deadline alert).
Each Spark step is a `spark-submit` (`spark_default`); its log shows rows staged per table.
""",
) as dag:

    @task
    def plan_days(params: dict | None = None, logical_date=None, dag_run=None) -> dict:
        from datetime import UTC

        from globalmart.warehouse.schedule import days_to_process

        # a run triggered through the API may have no logical date: it counts from when it was due
        moment = logical_date or dag_run.run_after
        first, last = days_to_process(params, moment, warehouse.schedule_timezone, datetime.now(UTC))
        print(f"processing {first} to {last}")
        return {"start": first.isoformat(), "end": last.isoformat()}

    wait_for_complete_lake = LakeCompletenessSensor(
        task_id="wait_for_complete_lake", last_day=END, lake_from_archiver="{{ params.lake_from_archiver }}",
        outlets=lake_datasets(settings))
    gate_raw = QualityGateSparkSubmitOperator(gate="raw_day", start=START, end=END, **spark_step("gate_raw"))
    etl = SparkSubmitOperator(**spark_step("etl"))
    rfm = SparkSubmitOperator(**spark_step("rfm"))
    product_performance = SparkSubmitOperator(**spark_step("products", task_id="product_performance"))
    sales_trends = SparkSubmitOperator(**spark_step("trends", task_id="sales_trends"))
    gate_outputs = QualityGateSparkSubmitOperator(gate="outputs", start=START, end=END, **spark_step("gate_outputs"))

    @task(inlets=[*lake_datasets(settings), product_catalog(settings)], outlets=warehouse_collections(settings))
    def publish(days: dict, outlet_events=None) -> dict:
        from airflow.providers.mongo.hooks.mongo import MongoHook

        from globalmart.warehouse.publish import publish as publish_days
        from globalmart.warehouse.sources import days_between

        client = MongoHook(mongo_conn_id="mongo_default").get_conn()
        days_range = days_between(datetime.fromisoformat(days["start"]).date(), datetime.fromisoformat(days["end"]).date())
        published = publish_days(client[settings.mongo.database], settings, days_range)
        for day, record in published.items():  # each collection's event says what its day changed
            for table, changes in record["tables"].items():
                outlet_events[warehouse_collection(settings, table)].extra[day] = changes
        return published

    @task
    def notify(published: dict) -> str:
        from globalmart.warehouse.emails import send_published

        return send_published(published, settings).subject

    days = plan_days()
    published = publish(days)
    days >> wait_for_complete_lake >> gate_raw >> etl >> rfm >> product_performance >> sales_trends >> gate_outputs
    gate_outputs >> published
    notify(published)
