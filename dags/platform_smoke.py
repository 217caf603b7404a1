"""Walking skeleton through every service of the platform (manual trigger)."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.smtp.operators.smtp import EmailOperator
from airflow.sdk import DAG, Param, task

from globalmart import smoke
from globalmart.dag_defaults import default_args
from globalmart.settings import get_settings
from globalmart.spark import application, submit_options

settings = get_settings()

with DAG(
    dag_id="platform_smoke",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["platform", "smoke"],
    params={
        "events": Param(10, type="integer", minimum=1, maximum=10_000, description="How many events to push through."),
    },
    doc_md="""
### Platform smoke test

Press **Trigger** to check that every service of the platform works together. One run:

1. **produce_events** — writes `events` JSON events to the Kafka topic
   `platform_smoke` (Kafka provider, `kafka_default`).
2. **spark_kafka_to_postgres** — `spark-submit` (`spark_default`) reads the topic and inserts
   this run's events into PostgreSQL table `platform_smoke_events` (JDBC, replay-safe).
3. **check_postgres_rows** — exactly `events` rows for this run, no duplicates (`postgres_default`).
4. **record_in_mongo** — upserts a run document in `platform_smoke_runs` on the MongoDB
   wire-protocol server and reads it back (`mongo_default`).
5. **send_email** — emails the result (`smtp_default`).
6. **check_email_delivered** — finds that email in the inbox through its API.

Any failure fails the run and sends a failure email. Re-running is safe.
""",
) as dag:
    produce_events = ProduceToTopicOperator(
        task_id="produce_events",
        kafka_config_id="kafka_default",
        topic=settings.kafka.platform_smoke.name,
        producer_function=smoke.smoke_events,
        producer_function_kwargs={"run_id": "{{ run_id }}", "count": "{{ params.events }}"},
        synchronous=True,
    )

    spark_kafka_to_postgres = SparkSubmitOperator(
        task_id="spark_kafka_to_postgres",
        conn_id="spark_default",
        application=application("batch/platform_smoke.py"),
        name="platform_smoke",
        application_args=["--run-id", "{{ run_id }}"],
        **submit_options(settings),
    )

    @task
    def check_postgres_rows(params=None, run_id=None) -> int:
        return smoke.count_loaded_rows(run_id, params["events"])

    @task
    def record_in_mongo(rows: int, run_id=None) -> dict:
        return smoke.record_run_in_mongo(run_id, rows)

    rows = check_postgres_rows()
    mongo_doc = record_in_mongo(rows)

    send_email = EmailOperator(
        task_id="send_email",
        conn_id="smtp_default",
        to=settings.smtp.alert_recipients,
        from_email=settings.smtp.sender,
        subject=smoke.email_subject("{{ run_id }}"),
        html_content=smoke.email_body("{{ run_id }}", "{{ ti.xcom_pull(task_ids='check_postgres_rows') }}"),
    )

    @task
    def check_email_delivered(run_id=None) -> dict:
        return smoke.wait_for_email(settings.smtp.inbox_url, smoke.email_subject(run_id))

    produce_events >> spark_kafka_to_postgres >> rows
    mongo_doc >> send_email >> check_email_delivered()
