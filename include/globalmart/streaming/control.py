"""Acting on the running streaming_pipeline: restart one app's process, find its Spark processes.

A restart is Airflow's own: the ``run_<process>`` task hosting the app is *cleared* through
Airflow's REST API. Airflow then stops the running try (the operator's ``on_kill``: queries
stop) and starts a new one, which resumes from the checkpoints; a clear does
not use up the task's retries, and the UI shows it as a new try.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from globalmart import db
from globalmart.settings import Settings
from globalmart.streaming.launch import group_of, process_name

log = logging.getLogger(__name__)

PIPELINE_DAG = "streaming_pipeline"


class AirflowApi:
    """Airflow's REST API (v2) as the admin user of settings."""

    def __init__(self, settings: Settings, timeout: float = 30):
        self.settings = settings
        self.client = httpx.Client(base_url=settings.airflow.url, timeout=timeout)

    def __enter__(self) -> AirflowApi:
        af = self.settings.airflow
        if af.admin_password is None:
            raise RuntimeError("no Airflow admin password in settings (GLOBALMART_AIRFLOW__ADMIN_PASSWORD)")
        response = self.client.post("/auth/token", json={"username": af.admin_user,
                                                          "password": af.admin_password.get_secret_value()})
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def _json(self, method: str, path: str, **kwargs) -> dict:
        response = self.client.request(method, path, **kwargs)
        if response.is_error:
            raise RuntimeError(f"Airflow API {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def running_run(self, dag_id: str = PIPELINE_DAG) -> str | None:
        runs = self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"state": "running", "limit": 1,
                                                                           "order_by": "-start_date"})
        return runs["dag_runs"][0]["dag_run_id"] if runs["dag_runs"] else None

    def task_instance(self, run_id: str, task_id: str, dag_id: str = PIPELINE_DAG) -> dict:
        return self._json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def clear_task(self, run_id: str, task_id: str, note: str, dag_id: str = PIPELINE_DAG) -> list[dict]:
        cleared = self._json("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", json={
            "dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False,
            "include_upstream": False, "include_downstream": False, "reset_dag_runs": False, "note": note,
        })
        return cleared["task_instances"]


def process_task(settings: Settings, app: str) -> str:
    """The streaming_pipeline task that runs the process hosting ``app``."""
    return f"run_{process_name(group_of(settings, app))}"


def query_runs(settings: Settings, apps: list[str]) -> dict[str, tuple[str, str, datetime]]:
    """Each query of ``apps`` → (run id, status, last seen) from stream_status."""
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT query_name, run_id::text, status, last_seen_at FROM stream_status WHERE app = ANY(%s)",
                    (apps,))
        return {name: (run_id, status, seen) for name, run_id, status, seen in cur.fetchall()}


def first_progress_after(settings: Settings, apps: list[str], moment: datetime) -> datetime | None:
    """When the first micro-batch of ``apps`` triggered after ``moment`` completed."""
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("""
            SELECT min(trigger_at + duration_ms * interval '1 millisecond') FROM stream_progress
            WHERE app = ANY(%s) AND trigger_at > %s
        """, (apps, moment))
        return cur.fetchone()[0]


def poll_until(what: str, check: Callable[[], object], timeout: float, every: float = 1.0):
    """``check()``'s first truthy value, polled every ``every`` seconds; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def wait_for_restart(settings: Settings, app: str, before: dict[str, tuple[str, str, datetime]], timeout: float,
                     report: Callable[[str], None] = log.info) -> dict[str, tuple[str, str, datetime]]:
    """Wait until every query of ``app`` known ``before`` runs under a new run id and reports."""
    deadline = time.monotonic() + timeout
    while True:
        now = query_runs(settings, [app])
        restarted = {name for name, (run_id, status, _) in now.items()
                     if name in before and run_id != before[name][0] and status in ("running", "idle")}
        waiting = sorted(set(before) - restarted)
        if not waiting:
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"{app} not restarted after {timeout:.0f} s: still waiting for {', '.join(waiting)}")
        report(f"{app}: {len(restarted)}/{len(before)} queries running again; waiting for {', '.join(waiting)}")
        time.sleep(5)


def restart_app(settings: Settings, app: str, timeout: float, report: Callable[[str], None] = log.info) -> dict:
    """Restart the process hosting ``app`` in the running pipeline and wait until it runs again."""
    task_id = process_task(settings, app)
    before = query_runs(settings, [app])
    with AirflowApi(settings) as api:
        run_id = api.running_run()
        if run_id is None:
            raise RuntimeError(f"no {PIPELINE_DAG} run is running: trigger {PIPELINE_DAG} to start the apps")
        state = api.task_instance(run_id, task_id)["state"]
        if state != "running":
            raise RuntimeError(f"{PIPELINE_DAG}.{task_id} of run {run_id} is {state}, not running: nothing to restart")
        requested_at = datetime.now(UTC)
        api.clear_task(run_id, task_id, note=f"restart_streaming_app: {app}, {requested_at:%Y-%m-%d %H:%M:%S} UTC")
    report(f"cleared {PIPELINE_DAG}.{task_id} of run {run_id}: its apps stop and start again")
    after = wait_for_restart(settings, app, before, timeout, report)
    first = first_progress_after(settings, [app], requested_at)
    return {"app": app, "run_id": run_id, "task_id": task_id, "requested_at": requested_at.isoformat(),
            "queries": sorted(after), "first_batch_done_at": first.isoformat() if first else None}


def pipeline_jvms(dag_run_id: str, task_id: str) -> list[int]:
    """The spark-submit JVMs this machine runs for one task of a streaming_pipeline run (found by
    the Airflow context variables the task gives its child processes): for measurements and tests."""
    wanted = {f"AIRFLOW_CTX_DAG_ID={PIPELINE_DAG}", f"AIRFLOW_CTX_DAG_RUN_ID={dag_run_id}",
              f"AIRFLOW_CTX_TASK_ID={task_id}"}
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if "java" not in (proc / "comm").read_text():
                continue
            if b"org.apache.spark.deploy.SparkSubmit" not in (proc / "cmdline").read_bytes():
                continue
            environ = set((proc / "environ").read_bytes().decode(errors="replace").split("\0"))
        except OSError:
            continue
        if wanted <= environ:
            found.append(int(proc.name))
    return found
