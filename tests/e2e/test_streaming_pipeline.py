"""The streaming_pipeline DAG on the real Airflow, Spark, Kafka, PostgreSQL and MailDev.

One run of the pipeline, hosting only ``sales_metrics`` to keep it cheap: SIGKILL its
spark-submit JVM, and the supervisor restarts it (a new try of its task, new query runs) and
sends exactly one incident email, then one recovery email; the restart button restarts it
(a new try from the same checkpoints, no incident); stopping the run stops the JVM.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import httpx
import pytest

from globalmart import db
from globalmart.streaming.control import AirflowApi, pipeline_jvms, poll_until, query_runs, wait_for_restart

APP = "sales_metrics"
TASK = "run_marts"  # sales_metrics shares the marts application


def incidents_since(settings, subject: str, moment: datetime) -> list[tuple]:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT incident_id, problem, opened_by, closed_at FROM stream_incidents "
                    "WHERE subject = %s AND opened_at >= %s ORDER BY incident_id", (subject, moment))
        return cur.fetchall()


def checkpoint_ids(settings) -> dict[str, str]:
    """Each query of the app → its id, which Spark keeps in the query's checkpoint."""
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT query_name, checkpoint_id::text FROM stream_status WHERE app = %s", (APP,))
        return dict(cur.fetchall())


def open_incidents(settings, subject: str) -> list[tuple]:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT incident_id FROM stream_incidents WHERE subject = %s AND closed_at IS NULL", (subject,))
        return cur.fetchall()


def emails_with(settings, marker: str) -> list[dict]:
    return [m for m in httpx.get(f"{settings.smtp.inbox_url}/email", timeout=30).json() if marker in m["subject"]]


@pytest.fixture
def pipeline_run(platform):
    """A running streaming_pipeline run hosting sales_metrics; stopped (and the DAG re-paused) after."""
    settings = platform
    with AirflowApi(settings) as api:
        was_paused = api._json("GET", "/api/v2/dags/streaming_pipeline")["is_paused"]
        if api.running_run() is not None:
            pytest.skip("a streaming_pipeline run is already running (the live pipeline): not disturbing it")
        api._json("PATCH", "/api/v2/dags/streaming_pipeline", json={"is_paused": False})
        run = api._json("POST", "/api/v2/dags/streaming_pipeline/dagRuns",
                        json={"logical_date": None, "conf": {"apps": [APP]}})["dag_run_id"]
    try:
        yield settings, run
    finally:
        with AirflowApi(settings) as api:
            if api._json("GET", f"/api/v2/dags/streaming_pipeline/dagRuns/{run}")["state"] == "running":
                api._json("PATCH", f"/api/v2/dags/streaming_pipeline/dagRuns/{run}", json={"state": "failed"})
            api._json("PATCH", "/api/v2/dags/streaming_pipeline", json={"is_paused": was_paused})
        deadline = time.monotonic() + 60  # the stop takes a few seconds; a JVM left after it must not leak
        while pipeline_jvms(run, TASK) and time.monotonic() < deadline:
            time.sleep(1)
        for pid in pipeline_jvms(run, TASK):
            os.kill(pid, signal.SIGKILL)


def test_kill_restart_button_and_stop(pipeline_run):
    settings, run = pipeline_run
    started = datetime.now(UTC)

    def running_under_new_runs():
        queries = query_runs(settings, [APP])
        fresh = {name: v for name, v in queries.items() if v[1] in ("running", "idle") and v[2] > started}
        return fresh if fresh and len(fresh) == len(queries) else None

    first = poll_until(f"{APP} to report from the pipeline", running_under_new_runs, timeout=240)
    checkpoints = checkpoint_ids(settings)
    (jvm,) = poll_until("the pipeline's spark-submit JVM", lambda: pipeline_jvms(run, TASK), timeout=30)
    # an incident left open by an earlier run is closed by the sensor once the app reports
    poll_until("no open incident", lambda: not open_incidents(settings, APP), timeout=60)

    killed_at = datetime.now(UTC)
    os.kill(jvm, signal.SIGKILL)

    restarted = wait_for_restart(settings, APP, first, timeout=240)
    assert all(restarted[name][0] != first[name][0] for name in first)
    assert checkpoint_ids(settings) == checkpoints  # a new run of the same queries: resumed, not started over
    with AirflowApi(settings) as api:
        assert api.task_instance(run, TASK)["try_number"] == 2
    (new_jvm,) = pipeline_jvms(run, TASK)
    assert new_jvm != jvm

    # the death is one incident: opened by the task's retry, closed by the sensor once the app reports again
    (incident,) = poll_until("the incident to close", lambda: [
        i for i in incidents_since(settings, APP, killed_at) if i[3] is not None], timeout=120)
    incident_id, problem, opened_by, _ = incident
    assert (problem, opened_by) == ("down", f"streaming_pipeline.{TASK}")
    assert len(incidents_since(settings, APP, killed_at)) == 1
    poll_until("the recovery email", lambda: emails_with(settings, f"Resolved: streaming incident #{incident_id}:"),
               timeout=30)
    (email,) = emails_with(settings, f"] Streaming incident #{incident_id}: {APP} is down")
    assert "spark-submit of sales_metrics exited" in httpx.get(
        f"{settings.smtp.inbox_url}/email/{email['id']}", timeout=30).json()["text"]

    # the restart button: a clean stop between batches, a new try (no retry used up), no incident
    pressed = datetime.now(UTC)
    with AirflowApi(settings) as api:
        was_paused = api._json("GET", "/api/v2/dags/restart_streaming_app")["is_paused"]
        api._json("PATCH", "/api/v2/dags/restart_streaming_app", json={"is_paused": False})
        try:
            restart_run = api._json("POST", "/api/v2/dags/restart_streaming_app/dagRuns",
                                    json={"logical_date": None, "conf": {"app": APP}})["dag_run_id"]
            state = poll_until("the restart run to finish", lambda: api._json(
                "GET", f"/api/v2/dags/restart_streaming_app/dagRuns/{restart_run}")["state"] in ("success", "failed")
                and api._json("GET", f"/api/v2/dags/restart_streaming_app/dagRuns/{restart_run}")["state"], 300, 5)
        finally:
            api._json("PATCH", "/api/v2/dags/restart_streaming_app", json={"is_paused": was_paused})
        assert state == "success"
        ti = api.task_instance(run, TASK)
        assert (ti["try_number"], ti["state"]) == (3, "running")
        stopped_log = api.client.get(f"/api/v2/dags/streaming_pipeline/dagRuns/{run}/taskInstances/{TASK}/logs/2",
                                     headers={"Accept": "application/json"}).text
    # asked to stop by on_kill (clean when the batch in flight ends within the stop timeout, else killed:
    # either way the exactly-once sinks replay it); the new runs resume the same checkpoints
    assert "stopping the streaming queries (SIGTERM to driver [" in stopped_log
    assert all(query_runs(settings, [APP])[name][0] != restarted[name][0] for name in restarted)
    assert checkpoint_ids(settings) == checkpoints
    assert incidents_since(settings, APP, pressed) == []

    # stopping the run stops the apps: the queries stop between batches and the JVM exits
    with AirflowApi(settings) as api:
        api._json("PATCH", f"/api/v2/dags/streaming_pipeline/dagRuns/{run}", json={"state": "failed"})
    poll_until("the JVM to exit", lambda: not pipeline_jvms(run, TASK), timeout=60)
    assert incidents_since(settings, APP, pressed) == []  # a stop on request is no incident
