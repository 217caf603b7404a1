"""Alert emails, event-driven: a message on the Kafka ``alerts`` topic wakes this DAG."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamTrigger
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, task

from globalmart.dag_defaults import default_args
from globalmart.settings import get_settings

settings = get_settings()
alerting = settings.alerting

alerts_topic = Asset(
    name="globalmart_alerts_topic",
    uri=f"kafka://{settings.kafka.bootstrap_servers}/{settings.kafka.alerts.name}",
    watchers=[
        AssetWatcher(
            name="alerts_topic_watcher",
            trigger=KafkaSharedStreamTrigger(topics=[settings.kafka.alerts.name], kafka_config_id=alerting.watcher_conn_id),
        )
    ],
)

with DAG(
    dag_id="alerts",
    # every alert wakes the DAG; the cron is a safety net that drains the topic even if a wake-up never came
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(alerting.catch_up_cron, timezone="UTC"),
                                 assets=alerts_topic),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one reader of the alerts topic at a time
    is_paused_upon_creation=False,  # alerting is on as soon as the DAG is deployed
    default_args=default_args(settings),
    tags=["alerts", "kafka", "email"],
    doc_md=f"""
### Alert emails

Emails the business alerts the streaming apps publish to the Kafka topic
`{settings.kafka.alerts.name}`: low and critical stock, anomalies scoring at least
{settings.thresholds.anomaly_alert_score}, cart-abandonment spikes. Each email is HTML with a
plain-text part and carries the facts a person acts on (product, stock, threshold, amount, user,
time). One email per product/user/hour and alert kind per throttle period
({alerting.throttle_minutes} min); more than {alerting.digest_threshold} emails due at once
become one digest. Malformed alert messages go to PostgreSQL's `dead_letters` with the reason.
Critical-stock alerts and anomalies scoring at least {settings.decisions.fraud_review_score} also
open a human decision (DAGs `{settings.decisions.restock_dag_id}`, `{settings.decisions.fraud_dag_id}`:
Required Actions), recorded before the email that links to it.

**How it is woken.** The asset `globalmart_alerts_topic` has an `AssetWatcher` on the Kafka
provider's `KafkaSharedStreamTrigger` (connection `{alerting.watcher_conn_id}`, consumer group
`{alerting.watcher_group}`). Each alert message becomes an asset event; the scheduler turns the
events queued meanwhile into one run (`max_active_runs=1`). The cron `{alerting.catch_up_cron}`
also runs the DAG, so alerts are drained even if a wake-up were ever missed.

**Why an AssetWatcher and not the provider's deferrable sensor (`AwaitMessageSensor`).** The
hard requirement is that no alert is lost and none is emailed twice when Airflow or the
triggerer restarts. The sensor's `AwaitMessageTrigger` commits the message's offset in the
triggerer *before* it yields the event, so a triggerer that dies between the two loses the
wake-up; and a sensor needs a DAG run parked on it forever (`@continuous`), paying a worker
start for the sensor and another for the task on every alert. The shared-stream trigger
commits its offset only after the asset event is stored in the metadata database, runs in the
triggerer with no run parked, and one run drains every alert that arrived meanwhile.
Neither trigger is trusted with the email itself: the watcher only wakes the DAG.

**What makes it lossless.** The task **email_alerts** reads the topic with its own consumer
group (`{alerting.consumer_group}`) and commits a batch's offsets only after
`globalmart.alerting.notify` has sent and recorded its emails (PostgreSQL
`alert_notifications`). A restart between alert and email leaves the batch uncommitted; the
next run reads it again and the notification store skips what was already emailed, so the
worst case is one email in flight at the crash being repeated, never an alert lost.

**Settings.** Recipients, throttle period, digest size: `settings.alerting`
(`GLOBALMART_ALERTING__*`), overridable at run time by the Airflow Variable
`{alerting.variable}` (a JSON object of those fields, e.g.
`{{"recipients": ["ops@example.com"], "throttle_minutes": 30}}`). The SMTP server is the
Airflow connection `{alerting.smtp_conn_id}`; if it is missing the task log says so and the
alerts stay uncommitted until it exists.
""",
) as dag:

    @task(execution_timeout=timedelta(minutes=30))
    def email_alerts(triggering_asset_events=None) -> dict:
        from airflow.sdk import Variable

        from globalmart.alerting.overrides import with_variable_overrides
        from globalmart.alerting.source import drain

        wakeups = sum(len(events) for events in (triggering_asset_events or {}).values())
        print(f"woken by {wakeups} alert events" if wakeups else "scheduled catch-up run")
        effective = with_variable_overrides(settings, alerting.variable, Variable.get(alerting.variable, default=None))
        report = drain(effective).as_dict()
        if effective.decisions.enabled:  # decisions whose run could not be started before (Airflow busy, restarting)
            from globalmart.decisions.service import start_runs

            report["decision_runs"] = start_runs(effective)
        return report

    email_alerts()
