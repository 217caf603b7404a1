"""The supervision plugin's pieces that need no services: trigger serialization, app selection,
the streaming_pipeline DAG's wiring, incident emails."""

import importlib
from dataclasses import asdict
from datetime import UTC, datetime

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest

from globalmart.settings import Settings
from globalmart.streaming.health import limits_for
from globalmart.streaming.incidents import incident_email, recovery_email


def test_trigger_serialization_round_trip():
    from streaming_supervision.triggers import StreamingAppHealthTrigger

    trigger = StreamingAppHealthTrigger(
        app="sales_metrics", group=["sales_metrics", "sessions"],
        limits={app: asdict(limits_for(Settings(), app)) for app in ("sales_metrics", "sessions")},
        supervising_since="2026-11-22T12:00:00+00:00", supervisor="streaming_pipeline.supervise_sales_metrics",
        poll_interval=2.5,
        postgres_conn_id="pg_x", kafka_conn_id="kafka_x",
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert classpath == "streaming_supervision.triggers.StreamingAppHealthTrigger"
    assert kwargs["limits"]["sessions"] == {"heartbeat_timeout_seconds": 120.0, "stall_seconds": 300.0,
                                            "max_lag_records": 100_000, "startup_grace_seconds": 600.0}


def test_selected_apps_are_checked():
    from streaming_supervision.sensors import selected

    assert selected("sales_metrics, sessions") == ["sales_metrics", "sessions"]
    with pytest.raises(ValueError, match="unknown streaming apps \\['nope'\\]"):
        selected("sales_metrics,nope")


def test_pipeline_runs_each_group_and_supervises_each_app():
    from globalmart.dag_parsing import parse_dag_files

    dag = parse_dag_files().dags["streaming_pipeline"]
    settings = Settings()
    assert sorted(dag.task_ids) == sorted(["run_marts", "run_bulk"] + [f"supervise_{app}" for app in
                                                                    ("sales_metrics", "anomaly_detector", "inventory_tracker",
                                                                     "sessions", "raw_archiver")])
    assert dag.get_task("run_bulk").group == ("sessions", "raw_archiver")
    run = dag.get_task("run_marts")
    assert run.retries == settings.supervision.restart_retries and run.retry_exponential_backoff
    assert run._conn_id == "spark_default"
    assert run.on_retry_callback and run.on_failure_callback
    assert dag.get_task("supervise_anomaly_detector").group == run.group


def test_incident_and_recovery_emails_carry_the_facts():
    opened = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    email = incident_email(42, "all_apps", "down", "sales_metrics: query stopped", {"affected": ["sales_metrics"]},
                           opened, "streaming_pipeline.run_all_apps")
    assert email.subject == "[GlobalMart] Streaming incident #42: all_apps is down: sales_metrics"
    for fact in ("#42", "all_apps", "2026-11-22 12:00:00 UTC", "sales_metrics: query stopped", "Affected"):
        assert fact in email.text and fact in email.html
    healed = recovery_email(42, "all_apps", "down", "x", opened, datetime(2026, 11, 22, 12, 3, tzinfo=UTC),
                            figures={"affected": ["sales_metrics"]})
    assert healed.subject == "[GlobalMart] Resolved: streaming incident #42: all_apps is down: sales_metrics"
    # the process died (its task's retry): the subject alone says it
    assert incident_email(7, "all_apps", "down", "spark-submit exited", {}, opened, "x").subject.endswith("all_apps is down")
    query = incident_email(8, "sessions", "down", "x", {"affected": ["sessions.sessions"]}, opened, "x")
    assert query.subject.endswith("#8: sessions is down: sessions.sessions")
    assert "3.0 min" in healed.text
    assert "<script>" not in incident_email(1, "a", "stalled", "<script>", {}, opened, "x").html
