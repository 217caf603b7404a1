"""The streaming apps, started and supervised for as long as the run lives (manual trigger)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param
from streaming_supervision.operators import StreamingAppsSubmitOperator, StreamingIncidentNotifier
from streaming_supervision.sensors import StreamingAppSensor

from globalmart.assets import LAKE_TOPICS, kafka_topic, lake_datasets
from globalmart.dag_defaults import default_args
from globalmart.settings import get_settings
from globalmart.spark import submit_options
from globalmart.streaming.launch import APPS, groups, process_name

settings = get_settings()
supervision = settings.supervision
SELECTED_APPS = "{{ params.apps | join(',') }}"

with DAG(
    dag_id="streaming_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["streaming", "spark", "kafka", "supervision"],
    params={
        "apps": Param(
            list(APPS),
            type="array",
            items={"type": "string", "enum": list(APPS)},
            minItems=1,
            uniqueItems=True,
            description="The streaming apps to run and supervise (default: all five). Apps left out are skipped.",
        ),
    },
    doc_md=f"""
### Streaming pipeline

Press **Trigger** to start the Spark Structured Streaming apps (Kafka → PostgreSQL marts and
the data lake) and keep them running, supervised, until the run is stopped.

- **run_&lt;process&gt;**: one `spark-submit` per process (master from the `spark_default`
  connection). Locally the marts share one Spark application (`run_marts`: sales, anomalies,
  stock, every half second) and the bulk work another (`run_bulk`: sessions and the lake, at a
  lower CPU priority, so their long batches never hold up a mart batch); with
  `GLOBALMART_STREAMING__ONE_APPLICATION=false` each app has its own. When a process dies
  the task fails and **retries: that is the restart** (up to {supervision.restart_retries} times,
  exponential backoff from {supervision.restart_delay_seconds:.0f} s), resuming from the apps'
  checkpoints, and a *down* incident email is sent once.
- **supervise_&lt;app&gt;**: a deferrable sensor per app, deferred once for the whole run. From the
  triggerer it checks every {supervision.check_interval_seconds:.0f} s the app's heartbeat
  (`stream_status`), its progress (`stream_progress`) and its Kafka lag against the topics'
  high-water marks. No heartbeat for {supervision.heartbeat_timeout_seconds:.0f} s: *down* (a starting app,
  until its first batch or idle report: {supervision.startup_grace_seconds:.0f} s); input seen waiting
  and no batch for {supervision.stall_seconds:.0f} s: *stalled*; more than {supervision.max_lag_records:,}
  records behind: *lagging*. Each incident names the apps or queries affected and is one email
  (recorded in PostgreSQL `stream_incidents`, so a triggerer restart sends nothing twice), and one
  more when it clears. The trigger opens and closes incidents itself and never resumes the
  sensor: a resume could meet Airflow's defer/resume race (apache/airflow#72716) and spend a retry.

**Stop**: mark the run *failed* or *success*. Each Spark task is asked to stop: its queries
stop (a micro-batch still running after a few seconds is cut short: the sinks are
exactly-once, so nothing is lost or repeated when it starts again). **Restart one app**: the `restart_streaming_app` DAG.

**Lineage**: the process running the raw archiver reads the `kafka.*` assets (event topics) and
writes the `lake.*` assets (the lake's datasets), which `daily_batch` turns into the warehouse.

Thresholds are settings (`GLOBALMART_SUPERVISION__*`).
""",
) as dag:
    for group in groups(settings):
        # lineage (the Assets view): the process running the raw archiver turns the event topics into the lake
        archives = "raw_archiver" in group
        StreamingAppsSubmitOperator(
            inlets=[kafka_topic(settings, key) for key in LAKE_TOPICS] if archives else [],
            outlets=lake_datasets(settings) if archives else [],
            task_id=f"run_{process_name(group)}",
            conn_id="spark_default",
            name=f"globalmart-{process_name(group)}",
            group=group,
            selected_apps=SELECTED_APPS,
            checkpoint_root=str(settings.checkpoints_dir),
            stop_timeout=supervision.stop_timeout_seconds,
            retries=supervision.restart_retries,
            retry_delay=timedelta(seconds=supervision.restart_delay_seconds),
            retry_exponential_backoff=True,
            max_retry_delay=timedelta(seconds=supervision.max_restart_delay_seconds),
            on_retry_callback=StreamingIncidentNotifier(group),
            **submit_options(settings, streaming=True),
        )
        for app in group:
            StreamingAppSensor(task_id=f"supervise_{app}", app=app, group=group, selected_apps=SELECTED_APPS)
