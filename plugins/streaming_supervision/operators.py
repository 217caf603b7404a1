"""StreamingAppsSubmitOperator: one long-running spark-submit hosting streaming apps.

The provider's SparkSubmitOperator, with three differences a streaming process needs:

- which apps it hosts is decided at run time (the run's ``apps`` param ∩ its group), and a
  process with none of them is skipped;
- spark-submit runs in its own session, and ``on_kill`` (the DAG run stopped, the task cleared
  by the restart button) asks the apps' Python driver to stop (SIGTERM: it stops the queries
  and the Spark application) and only kills spark-submit, as the provider does at once, when they are
  not gone in time. (In the task's process group, Airflow's stop signal would also reach the
  JVM, whose shutdown cuts the driver's clean stop short.);
- when the process dies, the retry that restarts it is announced as a "down" incident
  (:class:`StreamingIncidentNotifier`, one email per incident); a stop on request is not one.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk.bases.notifier import BaseNotifier

from globalmart.spark import application
from globalmart.streaming.launch import entry_point, process_name, python_drivers

from streaming_supervision.hooks import StreamingHealthHook
from streaming_supervision.sensors import selected


class StreamingAppsSubmitOperator(SparkSubmitOperator):
    """
    :param group: the apps this process may host
    :param selected_apps: comma-separated apps the run starts (templated)
    :param checkpoint_root: each app keeps its checkpoints in ``<root>/<app>/``
    :param stop_timeout: seconds a stop waits for the apps to stop before killing them
    """

    template_fields = (*SparkSubmitOperator.template_fields, "selected_apps")

    def __init__(self, *, group: tuple[str, ...], selected_apps: str, checkpoint_root: str,
                 stop_timeout: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        self.group = tuple(group)
        self.selected_apps = selected_apps
        self.checkpoint_root = checkpoint_root
        self.stop_timeout = stop_timeout
        self.stopped_on_request = False

    def execute(self, context) -> None:
        apps = [app for app in self.group if app in selected(self.selected_apps)]
        if not apps:
            raise AirflowSkipException(f"none of {', '.join(self.group)} is started by this run")
        relative_path, args = entry_point(apps, self.checkpoint_root)
        self.application, self.application_args = application(relative_path), args
        self.name = f"globalmart-{process_name(apps)}"
        self.log.info("starting %s (try %s); checkpoints under %s", ", ".join(apps), context["ti"].try_number,
                      self.checkpoint_root)
        self._hook = self._get_hook()
        if self._hook._is_yarn_cluster_mode or self._hook._is_kubernetes or self._hook._should_track_driver_status:
            return super().execute(context)  # cluster deploy mode: the provider tracks the driver
        self._hook.submit(self.application, start_new_session=True)

    def on_kill(self) -> None:
        self.stopped_on_request = True
        submit = self._hook._submit_sp if self._hook is not None else None  # the provider keeps the Popen private
        if submit is not None and submit.poll() is None:
            drivers = python_drivers(submit.pid)
            self.log.info("stopping the streaming queries (SIGTERM to driver %s)", drivers)
            for pid in drivers:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                submit.wait(self.stop_timeout)
                self.log.info("streaming apps stopped cleanly (exit %s)", submit.returncode)
                return
            except subprocess.TimeoutExpired:
                self.log.warning("streaming apps not stopped after %s s: killing spark-submit", self.stop_timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(submit.pid, signal.SIGKILL)  # its session: the JVM, the driver, its Python workers
                submit.wait(self.stop_timeout)
                return
        super().on_kill()


class StreamingIncidentNotifier(BaseNotifier):
    """On a retry of a streaming process's task: the process died, open its "down" incident
    (emailed once; the supervising sensors close it when the restarted apps report again)."""

    template_fields = ()

    def __init__(self, group: tuple[str, ...], postgres_conn_id: str = "postgres_default"):
        super().__init__()
        self.group = tuple(group)
        self.postgres_conn_id = postgres_conn_id

    def notify(self, context) -> None:
        from globalmart.alerting.delivery import send
        from globalmart.settings import get_settings

        ti = context["ti"]
        started = (context.get("params") or {}).get("apps") or self.group
        apps = [app for app in self.group if app in started] or list(self.group)
        hook = StreamingHealthHook(postgres_conn_id=self.postgres_conn_id)
        # a stop on request (run stopped, task cleared by the restart button) is no incident: this
        # callback may run in the task's process (its on_kill set the flag) or, when Airflow
        # killed the task, in the DAG processor, where the queries' clean stop tells it apart
        if getattr(context.get("task"), "stopped_on_request", False) or (
                ti.start_date is not None and self._stopped_cleanly(hook, apps, ti.start_date)):
            self.log.info("%s.%s stopped on request (run stopped or task cleared): no incident", ti.dag_id, ti.task_id)
            return
        settings = get_settings()
        process = process_name(apps)
        # the provider's message holds the whole command line and log tail: keep the exit code
        code = re.search(r"Error code is: (-?\d+)", str(context.get("exception") or ""))
        reason = f"spark-submit of {', '.join(apps)} exited" + (f" with code {code[1]}" if code else "")
        figures = {"task": f"{ti.dag_id}.{ti.task_id}", "run_id": ti.run_id, "try_number": ti.try_number,
                   "restart": "by the task's retry, with exponential backoff"}
        opened = hook.open_incident(
            process, "down", reason, figures, f"{ti.dag_id}.{ti.task_id}", lambda email: send(email, settings))
        self.log.warning("%s down: %s%s", process, reason, f" (incident #{opened} emailed)" if opened else " (incident already open)")

    @staticmethod
    def _stopped_cleanly(hook: StreamingHealthHook, apps: list[str], since) -> bool:
        from globalmart.streaming.incidents import stopped_cleanly

        with contextlib.closing(hook.get_conn()) as conn:
            return stopped_cleanly(conn, apps, since)
