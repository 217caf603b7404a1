"""The last runs of each DAG, read through Airflow's REST API (v2) with the admin login."""

from __future__ import annotations

from datetime import datetime

import httpx

from globalmart.readmodel.result import Result
from globalmart.settings import Settings

SOURCE = "Airflow REST API /api/v2 (DAG runs)"
RUN_FIELDS = ("dag_id", "dag_run_id", "state", "run_type", "run_after", "start_date", "end_date", "duration")


TIME_FIELDS = ("run_after", "start_date", "end_date")


def _parsed(key: str, value):
    return datetime.fromisoformat(value) if key in TIME_FIELDS and value else value


def last_runs(settings: Settings, runs_per_dag: int = 5, timeout: float = 5.0) -> Result:
    """The newest ``runs_per_dag`` runs of every DAG, by DAG and newest first. An unreachable
    Airflow is a message, not an error: the rest of a health page still shows."""
    airflow = settings.airflow
    password = airflow.admin_password.get_secret_value() if airflow.admin_password else ""
    try:
        with httpx.Client(base_url=airflow.url, timeout=timeout) as client:
            token = client.post("/auth/token", json={"username": airflow.admin_user, "password": password})
            token.raise_for_status()
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            dags = client.get("/api/v2/dags", params={"limit": 100, "order_by": "dag_id"})
            dags.raise_for_status()
            rows = []
            for dag in dags.json()["dags"]:
                runs = client.get(f"/api/v2/dags/{dag['dag_id']}/dagRuns",
                                  params={"limit": runs_per_dag, "order_by": "-run_after"})
                runs.raise_for_status()
                rows += [{"paused": dag["is_paused"], **{key: _parsed(key, run.get(key)) for key in RUN_FIELDS}}
                         for run in runs.json()["dag_runs"]]
    except (httpx.HTTPError, KeyError) as error:
        return Result(SOURCE, [], None, "the platform (`make run`)",
                      empty_note=f"Airflow did not answer at {airflow.url}: {error}")
    newest = max((row["run_after"] for row in rows if row["run_after"]), default=None)
    return Result(SOURCE, rows, newest, "a DAG (Airflow UI → a DAG → Trigger)")
