"""StreamingAppSensor: supervises one streaming app for as long as the DAG run lives.

Deferred, it waits in the triggerer (:class:`StreamingAppHealthTrigger`) until the app's
problems differ from its open incidents; then it wakes on a worker, opens the new incidents
(one email each) and closes the cleared ones (one recovery email each) in PostgreSQL, and
defers again. A dead app is restarted by its ``run_*`` Spark task's retries, not here. With
``deferrable=False`` it does the same in ``reschedule`` mode, one check per poke.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime

from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk.bases.sensor import BaseSensorOperator

from globalmart.streaming.health import limits_for
from globalmart.streaming.launch import APPS

from streaming_supervision.hooks import StreamingHealthHook
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
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        if app not in group:
            raise ValueError(f"{app} is not in its group {group}")
        self.app = app
        self.group = tuple(group)
        self.selected_apps = selected_apps
        self.postgres_conn_id = postgres_conn_id
        self.kafka_conn_id = kafka_conn_id
        self.deferrable = deferrable

    def _trigger(self, supervising_since: str) -> StreamingAppHealthTrigger:
        from globalmart.settings import get_settings

        settings = get_settings()
        running = [app for app in self.group if app in selected(self.selected_apps)]
        return StreamingAppHealthTrigger(
            app=self.app, group=running,
            limits={app: asdict(limits_for(settings, app)) for app in running},
            supervising_since=supervising_since,
            poll_interval=settings.supervision.check_interval_seconds,
            postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id,
        )

    def execute(self, context) -> None:
        if self.app not in selected(self.selected_apps):
            raise AirflowSkipException(f"{self.app} is not started by this run")
        if not self.deferrable:
            return super().execute(context)
        self.log.info("supervising %s (process hosting %s)", self.app, ", ".join(self.group))
        self.defer(trigger=self._trigger(datetime.now(UTC).isoformat()), method_name="execute_complete")

    def poke(self, context) -> bool:
        """One check and the incident changes it calls for; never done: supervision lasts the run."""
        start = context["ti"].start_date or datetime.now(UTC)
        health, open_incidents = asyncio.run(self._trigger(start.isoformat()).check_once())
        self._act(context, [asdict(f) | {"problem": f.problem.value} for f in health.findings], open_incidents)
        return False

    def execute_complete(self, context, event: dict) -> None:
        self._act(context, event["findings"], {tuple(key) for key in event["open"]})
        self.defer(trigger=self._trigger(event["supervising_since"]), method_name="execute_complete")

    def _act(self, context, findings: list[dict], open_incidents: set[tuple[str, str]]) -> None:
        from globalmart.alerting.delivery import send
        from globalmart.settings import get_settings

        settings = get_settings()
        hook = StreamingHealthHook(postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id)
        by = f"{context['ti'].dag_id}.{context['ti'].task_id}"
        wanted = {(f["subject"], f["problem"]): f for f in findings}
        for (subject, problem), finding in sorted(wanted.items()):
            if (subject, problem) not in open_incidents:
                opened = hook.open_incident(subject, problem, finding["reason"], finding["figures"], by,
                                            lambda email: send(email, settings))
                self.log.warning("%s %s: %s%s", subject, problem, finding["reason"],
                                 f" (incident #{opened} emailed)" if opened else " (incident already open)")
        for subject, problem in sorted(open_incidents - set(wanted)):
            closed = hook.close_incident(subject, problem, by, lambda email: send(email, settings))
            self.log.info("%s %s cleared%s", subject, problem, f" (incident #{closed} closed, recovery emailed)" if closed else "")

