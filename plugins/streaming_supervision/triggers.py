"""StreamingAppHealthTrigger: supervises one streaming app from the triggerer for as long as the run lives.

Every ``poll_interval`` seconds it reads the heartbeat and progress of the queries of the app's
process from PostgreSQL and the topics' high-water marks from Kafka, decides the app's health
(:func:`globalmart.streaming.health.assess`) and, when the problems found differ from the
incidents open in PostgreSQL, opens the new ones and closes the cleared ones itself (one email
each; :meth:`StreamingHealthHook.reconcile`). The incident table makes that safe from here: one
INSERT per open problem wins, so a triggerer restart or a second triggerer sends nothing twice.

It fires no event: the sensor that deferred to it never resumes, which is what keeps it clear of
the scheduler's defer/resume race (Airflow issues #71580, #72716: the executor's "success" for the
worker exiting on ``defer()``, drained after the resumed try is already running, fails that try as
"state mismatch" and spends a retry). The triggerer cancels it when the run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psycopg2
from airflow.triggers.base import BaseTrigger, TriggerEvent

from globalmart.streaming.health import Health, Limits, Problem, assess, subjects
from globalmart.streaming.launch import process_name

from streaming_supervision.hooks import StreamingHealthHook


class StreamingAppHealthTrigger(BaseTrigger):
    """
    :param app: the streaming app watched
    :param group: the apps hosted in the same process (``app`` included)
    :param limits: each app of ``group`` → its thresholds (``Limits`` fields)
    :param supervising_since: ISO time supervision began; apps not heard from since are starting
    :param supervisor: who opens and closes the incidents (``dag_id.task_id``)
    :param poll_interval: seconds between checks
    """

    def __init__(
        self,
        app: str,
        group: list[str],
        limits: dict[str, dict],
        supervising_since: str,
        supervisor: str,
        poll_interval: float = 10.0,
        postgres_conn_id: str = "postgres_default",
        kafka_conn_id: str = "kafka_default",
    ):
        super().__init__()
        self.app = app
        self.group = list(group)
        self.limits = limits
        self.supervising_since = supervising_since
        self.supervisor = supervisor
        self.poll_interval = poll_interval
        self.postgres_conn_id = postgres_conn_id
        self.kafka_conn_id = kafka_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "app": self.app,
                "group": self.group,
                "limits": self.limits,
                "supervising_since": self.supervising_since,
                "supervisor": self.supervisor,
                "poll_interval": self.poll_interval,
                "postgres_conn_id": self.postgres_conn_id,
                "kafka_conn_id": self.kafka_conn_id,
            },
        )

    def hook(self) -> StreamingHealthHook:
        return StreamingHealthHook(postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id)

    async def check(self, hook: StreamingHealthHook, pg,
                    seen_waiting: Mapping[str, datetime]) -> tuple[Health, set[tuple[str, str]]]:
        """One look: the app's health and the incidents open for it."""
        queries = await hook.aquery_figures(pg, self.group)
        open_incidents = await hook.aopen_incidents(pg, subjects(self.app, self.group))
        down_since = open_incidents.get((process_name(self.group), Problem.DOWN.value))
        topics = sorted({topic for q in queries if q.app == self.app for topic in q.committed})
        try:
            high_water = await hook.ahigh_water_marks(topics)
        except Exception as exc:  # noqa: BLE001 - Kafka unreachable: judge heartbeat and progress without lag
            self.log.warning("%s: no high-water marks from Kafka (%s); lag not checked", self.app, exc)
            high_water = {}
        health = assess(
            self.app, self.group, queries, high_water,
            {app: Limits(**values) for app, values in self.limits.items()},
            datetime.fromisoformat(self.supervising_since), datetime.now(UTC), down_since, seen_waiting,
        )
        return health, set(open_incidents)

    async def supervise_once(self, hook: StreamingHealthHook, pg, seen_waiting: Mapping[str, datetime]) -> Health:
        """One check, and the incidents it opens or closes."""
        from globalmart.alerting.delivery import send
        from globalmart.settings import get_settings

        health, open_incidents = await self.check(hook, pg, seen_waiting)
        self.log.info("%s: %s; open incidents: %s", self.app,
                      "healthy" if health.healthy else "; ".join(f"{f.problem} ({f.reason})" for f in health.findings),
                      sorted(open_incidents) or "none")
        if health.keys != open_incidents:
            settings = get_settings()
            for change in await asyncio.to_thread(hook.reconcile, health.findings, open_incidents, self.supervisor,
                                                  lambda email: send(email, settings)):
                self.log.warning("%s", change)
        return health

    async def supervise_now(self, seen_waiting: Mapping[str, datetime]) -> Health:
        """One supervising check on connections of its own (the sensor without a triggerer)."""
        hook = self.hook()
        pg = await hook.aget_postgres()
        try:
            return await self.supervise_once(hook, pg, seen_waiting)
        finally:
            await pg.close()
            hook.close()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        pg = None
        seen_waiting: Mapping[str, datetime] = {}
        try:
            while True:
                try:
                    if pg is None or pg.is_closed():
                        pg = await hook.aget_postgres()
                    seen_waiting = (await self.supervise_once(hook, pg, seen_waiting)).waiting_since
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, psycopg2.Error) as exc:
                    # PostgreSQL or the SMTP relay unreachable (SMTPException is an OSError): a failed
                    # email rolls its incident back, so the next check tries again
                    self.log.warning("%s: %s; retrying in %s s", self.app, exc, self.poll_interval)
                    if pg is not None:
                        pg.terminate()
                        pg = None
                await asyncio.sleep(self.poll_interval)
        finally:
            if pg is not None:
                await pg.close()
            await asyncio.to_thread(hook.close)
        yield TriggerEvent({})  # unreachable: makes run() the async generator the triggerer iterates
