"""LakeCompletenessSensor: the daily batch's wait for a whole day in the lake, before its raw gate.

It checks once on the worker (a day long archived, as at 02:00, passes without deferring, and
so without the scheduler's defer/resume race: see ``streaming_supervision.triggers``), then
defers to :class:`LakeCompletenessTrigger`. When the timeout passes first, it emails what is
behind (per topic and partition, by how many records) to the alert recipients and fails
without retries: waiting again would only push the run past its deadline.

With outlets (the lake's datasets as Airflow Assets), each gets an event saying through which
day the lake is complete: the archiver's progress, seen in the Assets view.

A run whose lake was not written by the raw archiver (days loaded directly, e.g. a backfill with
``globalmart.generator.lake.write_lake``) passes ``lake_from_archiver`` false and is not held.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk.bases.sensor import BaseSensorOperator

from globalmart.warehouse.completeness import BATCH_LAKE_TOPICS, archiver_query, lake_cutoff

from lake_completeness.triggers import COMPLETE, LakeCompletenessTrigger


def _flag(value) -> bool:
    """A templated boolean param renders as text."""
    return value if isinstance(value, bool) else str(value).strip().lower() not in {"false", "0", "no", ""}


class LakeCompletenessSensor(BaseSensorOperator):
    """
    :param last_day: the run's last day, YYYY-MM-DD (templated); the lake must be archived past its end
    :param lake_from_archiver: false (templated) when the run's days were not written by the archiver
    """

    template_fields = ("last_day", "lake_from_archiver")
    ui_color = "#e8f4ea"

    def __init__(self, *, last_day: str, lake_from_archiver: bool | str = True,
                 postgres_conn_id: str = "postgres_default", kafka_conn_id: str = "kafka_default", **kwargs):
        super().__init__(**kwargs)
        self.last_day = last_day
        self.lake_from_archiver = lake_from_archiver
        self.postgres_conn_id = postgres_conn_id
        self.kafka_conn_id = kafka_conn_id

    def _trigger(self, started: datetime) -> LakeCompletenessTrigger:
        from globalmart.settings import get_settings

        settings = get_settings()
        warehouse = settings.warehouse
        cutoff = lake_cutoff(date.fromisoformat(self.last_day), warehouse.completeness_grace_seconds)
        # the timeout counts from when the lake can first be judged
        deadline = max(started, cutoff) + timedelta(seconds=warehouse.completeness_timeout_seconds)
        return LakeCompletenessTrigger(
            topics=[getattr(settings.kafka, key).name for key in BATCH_LAKE_TOPICS],
            queries=[archiver_query(key) for key in BATCH_LAKE_TOPICS],
            cutoff=cutoff.isoformat(), deadline=deadline.isoformat(), poll_interval=warehouse.completeness_poll_seconds,
            postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id,
        )

    def _record(self, context, summary: str, checked: bool = True) -> str:
        """The event each outlet (the lake's datasets) gets: the day found whole, and how."""
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra.update(
                {"complete_through": self.last_day, "checked_from_archiver_progress": checked, "summary": summary})
        return summary

    def execute(self, context) -> str:
        if not _flag(self.lake_from_archiver):
            message = "lake not written by the raw archiver for this run (lake_from_archiver false): not checked"
            self.log.info("%s", message)
            return self._record(context, message, checked=False)
        started = datetime.now(UTC)
        trigger = self._trigger(started)
        result = asyncio.run(trigger.look_now())
        self.log.info("%s", result.summary())
        if result.complete:
            return self._record(context, result.summary())
        self.log.info("waiting in the triggerer until %s, checking every %s s", trigger.deadline, trigger.poll_interval)
        self.defer(trigger=trigger, method_name="execute_complete", kwargs={"started": started.isoformat()})

    def execute_complete(self, context, event: dict, started: str) -> str:
        from globalmart.alerting.delivery import send
        from globalmart.settings import get_settings
        from globalmart.warehouse.completeness import render_incomplete

        if event["status"] == COMPLETE:
            self.log.info("%s", event["summary"])
            return self._record(context, event["summary"])
        settings = get_settings()
        waited = (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
        email = render_incomplete(event["summary"], date.fromisoformat(self.last_day), waited, settings)
        send(email, settings)
        raise AirflowFailException(f"{email.subject}\n{event['summary']}")
