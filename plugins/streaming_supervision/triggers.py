"""StreamingAppHealthTrigger: watches one streaming app from the triggerer until its incidents change.

Every ``poll_interval`` seconds it reads the heartbeat and progress of the queries of the app's
process from PostgreSQL and the topics' high-water marks from Kafka, decides the app's health
(:func:`globalmart.streaming.health.assess`) and compares the problems found with the incidents
open in PostgreSQL. It fires only when they differ (a problem with no open incident, or an open
incident that has cleared), so a healthy or steadily broken app costs no worker slot; and since
the comparison is against PostgreSQL, a triggerer restart fires nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg
from airflow.triggers.base import BaseTrigger, TriggerEvent

from globalmart.streaming.health import Health, Limits, Problem, assess, subjects
from globalmart.streaming.launch import process_name

from streaming_supervision.hooks import StreamingHealthHook


class StreamingAppHealthTrigger(BaseTrigger):
    """
    :param app: the streaming app watched
    :param group: the apps hosted in the same process (``app`` included)
    :param limits: each app of ``group`` → its thresholds (``Limits`` fields)
    :param supervising_since: ISO time supervision began; nothing counts as missing before
        it plus the heartbeat timeout
    :param poll_interval: seconds between checks
    """

    def __init__(
        self,
        app: str,
        group: list[str],
        limits: dict[str, dict],
        supervising_since: str,
        poll_interval: float = 10.0,
        postgres_conn_id: str = "postgres_default",
        kafka_conn_id: str = "kafka_default",
    ):
        super().__init__()
        self.app = app
        self.group = list(group)
        self.limits = limits
        self.supervising_since = supervising_since
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
                "poll_interval": self.poll_interval,
                "postgres_conn_id": self.postgres_conn_id,
                "kafka_conn_id": self.kafka_conn_id,
            },
        )

    def hook(self) -> StreamingHealthHook:
        return StreamingHealthHook(postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id)

    async def check(self, hook: StreamingHealthHook, pg) -> tuple[Health, set[tuple[str, str]]]:
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
            datetime.fromisoformat(self.supervising_since), datetime.now(UTC), down_since,
        )
        return health, set(open_incidents)

    async def check_once(self) -> tuple[Health, set[tuple[str, str]]]:
        hook = self.hook()
        pg = await hook.aget_postgres()
        try:
            return await self.check(hook, pg)
        finally:
            await pg.close()
            hook.close()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        pg = None
        try:
            while True:
                try:
                    if pg is None or pg.is_closed():
                        pg = await hook.aget_postgres()
                    health, open_incidents = await self.check(hook, pg)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self.log.warning("%s: PostgreSQL unreachable (%s); retrying in %s s", self.app, exc, self.poll_interval)
                    pg = None
                    await asyncio.sleep(self.poll_interval)
                    continue
                self.log.info("%s: %s; open incidents: %s", self.app,
                              "healthy" if health.healthy else "; ".join(f"{f.problem} ({f.reason})" for f in health.findings),
                              sorted(open_incidents) or "none")
                if health.keys != open_incidents:
                    yield TriggerEvent({
                        "app": self.app,
                        "checked_at": datetime.now(UTC).isoformat(),
                        "findings": [asdict(f) | {"problem": f.problem.value} for f in health.findings],
                        "open": [list(key) for key in sorted(open_incidents)],
                        "supervising_since": self.supervising_since,
                    })
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            if pg is not None:
                await pg.close()
            await asyncio.to_thread(hook.close)
