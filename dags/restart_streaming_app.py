"""The "restart one streaming app" button (manual trigger)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from globalmart.dag_defaults import default_args
from globalmart.settings import get_settings
from globalmart.streaming.launch import APPS

settings = get_settings()

with DAG(
    dag_id="restart_streaming_app",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["streaming", "supervision", "action"],
    params={
        "app": Param(APPS[0], type="string", enum=list(APPS),
                     description="The streaming app to restart. Its queries are stopped and resume from their "
                     "checkpoints: nothing is lost or written twice."),
        "wait_seconds": Param(int(settings.supervision.restart_wait_seconds), type="integer", minimum=30, maximum=3600,
                              description="How long to wait for the restarted app's queries to run again "
                              "before the run fails."),
    },
    doc_md="""
### Restart one streaming app

Press **Trigger**, pick the app, and it is restarted inside the running **streaming_pipeline**
run (which must be running): its `run_<process>` task is cleared through Airflow's REST API, so
Airflow stops the running Spark process (its queries are asked to stop) and starts it again;
every query resumes from its checkpoint. The restart does not use up the task's retries, and
the pipeline's graph shows it as a new try.

Locally the apps share two Spark applications, the marts (`run_marts`) and the bulk work
(`run_bulk`): restarting one app restarts its application, and every app in it resumes from its
own checkpoints. On a cluster
(`GLOBALMART_STREAMING__ONE_APPLICATION=false`) only the chosen app restarts.

The run succeeds once every query of the app reports under a new run id; the log shows
which queries are still starting. A separate DAG rather than a param of the pipeline: the
pipeline's run lives for days, and a restart is an action on it, with its own history.
""",
) as dag:

    @task(execution_timeout=timedelta(hours=1))
    def restart(params: dict | None = None) -> dict:
        from globalmart.streaming.control import restart_app

        result = restart_app(settings, params["app"], timeout=params["wait_seconds"], report=print)
        print(f"{params['app']} restarted: queries {', '.join(result['queries'])}; "
              f"first batch after the restart done at {result['first_batch_done_at']}")
        return result

    restart()
