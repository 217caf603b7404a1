"""StreamingAppSensor: supervises one streaming app for as long as the DAG run lives.

Deferred once, for the whole run: its trigger (:class:`StreamingAppHealthTrigger`) checks the
app in the triggerer and opens and closes its incidents (one email each) itself, so the sensor
never resumes and no worker slot is held. Resuming after every incident change is what exposed
it to the scheduler's defer/resume race (see the trigger's module). A dead app is restarted by
its ``run_*`` Spark task's retries, not here. With ``deferrable=False`` it does the same checks
as one long poke on a worker (``mode="poke"``: a ``reschedule`` exit meets the same race, and a
stall is seen across checks, which a rescheduled sensor would forget).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime

from airflow.providers.common.compat.sdk import AirflowException, AirflowSkipException
from airflow.sdk.bases.sensor import BaseSensorOperator

from globalmart.streaming.health import limits_for
from globalmart.streaming.launch import APPS

from streaming_supervision.triggers import StreamingAppHealthTrigger


def selected(apps: str) -> list[str]:
    """The apps a run starts, from the comma-separated text the DAG renders from its params."""
    chosen = [app.strip() for app in apps.split(",") if app.strip()]
    unknown = sorted(set(chosen) - set(APPS))
    if unknown:
        raise ValueError(f"unknown streaming apps {unknown}; choose from {', '.join(APPS)}")
    return chosen


class StreamingAppSensor(BaseSensorOperator):
    """
    :param app: the streaming app to supervise
    :param group: the apps its process hosts (``globalmart.streaming.launch.groups``)
    :param selected_apps: comma-separated apps this run starts (templated); the sensor of an app
        not started is skipped
    """

    template_fields = ("selected_apps",)
    ui_color = "#d6eaf8"

    def __init__(self, *, app: str, group: tuple[str, ...], selected_apps: str = ",".join(APPS),
                 postgres_conn_id: str = "postgres_default", kafka_conn_id: str = "kafka_default",
                 deferrable: bool = True, **kwargs):
        kwargs.setdefault("mode", "poke")
        super().__init__(**kwargs)
        if app not in group:
            raise ValueError(f"{app} is not in its group {group}")
        self.app = app
        self.group = tuple(group)
        self.selected_apps = selected_apps
        self.postgres_conn_id = postgres_conn_id
        self.kafka_conn_id = kafka_conn_id
        self.deferrable = deferrable
        self._seen_waiting = {}  # what the previous poke saw waiting (deferrable=False)

    def _trigger(self, context, supervising_since: str) -> StreamingAppHealthTrigger:
        from globalmart.settings import get_settings

        settings = get_settings()
        running = [app for app in self.group if app in selected(self.selected_apps)]
        return StreamingAppHealthTrigger(
            app=self.app, group=running,
            limits={app: asdict(limits_for(settings, app)) for app in running},
            supervising_since=supervising_since,
            supervisor=f"{context['ti'].dag_id}.{context['ti'].task_id}",
            poll_interval=settings.supervision.check_interval_seconds,
            postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id,
        )

    def execute(self, context) -> None:
        if self.app not in selected(self.selected_apps):
            raise AirflowSkipException(f"{self.app} is not started by this run")
        if not self.deferrable:
            return super().execute(context)
        self.log.info("supervising %s (process hosting %s) from the triggerer", self.app, ", ".join(self.group))
        self.defer(trigger=self._trigger(context, datetime.now(UTC).isoformat()), method_name="execute_complete")

    def poke(self, context) -> bool:
        """One check and the incident changes it calls for; never done: supervision lasts the run."""
        start = context["ti"].start_date or datetime.now(UTC)
        health = asyncio.run(self._trigger(context, start.isoformat()).supervise_now(self._seen_waiting))
        self._seen_waiting = health.waiting_since
        return False

    def execute_complete(self, context, event=None) -> None:
        # the trigger fires no event; resuming here means something ended it
        raise AirflowException(f"supervision of {self.app} ended unexpectedly: {event}")
