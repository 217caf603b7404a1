"""StreamingHealthHook: the figures that tell whether a streaming app is healthy, and its incidents.

It owns two connections: PostgreSQL (``postgres_default``: the heartbeat tables ``stream_status``
and ``stream_progress`` the apps' progress listener writes, and ``stream_incidents``) and Kafka
(``kafka_default``: the topics' high-water marks, through the Kafka provider's admin client hook:
``list_offsets`` asks the brokers for the latest offsets without a consumer or a group). The
async methods serve the trigger in the triggerer's event loop (asyncpg; the blocking Kafka and
incident calls run in a thread).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.sdk.bases.hook import BaseHook

from globalmart.streaming.health import Finding, Offsets, QueryFigures, committed_offsets

QUERIES = """
SELECT s.query_name, s.app, s.status, s.last_seen_at, p.done_at, p.end_offsets,
       s.status <> 'running' OR p.run_id = s.run_id AS reported_since_start
FROM stream_status s
LEFT JOIN LATERAL (
    SELECT trigger_at + duration_ms * interval '1 millisecond' AS done_at, end_offsets, run_id
    FROM stream_progress p
    WHERE p.app = s.app AND p.query_name = s.query_name
    ORDER BY trigger_at DESC
    LIMIT 1
) p ON true
WHERE s.app = ANY($1::text[])
"""

OPEN_INCIDENTS = """
SELECT subject, problem, opened_at FROM stream_incidents WHERE closed_at IS NULL AND subject = ANY($1::text[])
"""


class StreamingHealthHook(BaseHook):
    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    hook_name = "GlobalMart streaming health"

    def __init__(self, postgres_conn_id: str = "postgres_default", kafka_conn_id: str = "kafka_default", **kwargs):
        super().__init__(**kwargs)
        self.postgres_conn_id = postgres_conn_id
        self.kafka_conn_id = kafka_conn_id
        self._kafka_admin = None

    # -- async: the trigger --------------------------------------------------------------

    async def aget_postgres(self):
        """An asyncpg connection to the ``postgres_conn_id`` database."""
        import asyncpg

        conn = await self.aget_connection(self.postgres_conn_id)
        return await asyncpg.connect(host=conn.host, port=conn.port or 5432, user=conn.login,
                                     password=conn.password, database=conn.schema, timeout=10)

    async def aquery_figures(self, pg, apps: Sequence[str]) -> list[QueryFigures]:
        rows = await pg.fetch(QUERIES, list(apps))
        return [
            QueryFigures(
                query_name=row["query_name"], app=row["app"], status=row["status"], last_seen_at=row["last_seen_at"],
                last_batch_at=row["done_at"],
                committed=committed_offsets(json.loads(row["end_offsets"]) if row["end_offsets"] else None),
                reported_since_start=bool(row["reported_since_start"]),
            )
            for row in rows
        ]

    async def aopen_incidents(self, pg, subjects: Sequence[str]) -> dict[tuple[str, str], datetime]:
        """(subject, problem) → when it opened, of the open incidents of ``subjects``."""
        return {(row["subject"], row["problem"]): row["opened_at"] for row in await pg.fetch(OPEN_INCIDENTS, list(subjects))}

    async def ahigh_water_marks(self, topics: Sequence[str]) -> Offsets:
        """Topic → partition (as text) → next offset to be written, from the brokers."""
        if not topics:
            return {}
        return await asyncio.to_thread(self.high_water_marks, list(topics))

    def high_water_marks(self, topics: list[str]) -> Offsets:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        if self._kafka_admin is None:
            self._kafka_admin = KafkaAdminClientHook(kafka_config_id=self.kafka_conn_id).get_conn
        metadata = self._kafka_admin.list_topics(timeout=10).topics
        latest = {TopicPartition(topic, partition): OffsetSpec.latest()
                  for topic in topics if topic in metadata and metadata[topic].error is None
                  for partition in metadata[topic].partitions}
        marks: dict[str, dict[str, int]] = {}
        if latest:
            for partition, future in self._kafka_admin.list_offsets(latest, request_timeout=10).items():
                marks.setdefault(partition.topic, {})[str(partition.partition)] = future.result().offset
        return marks

    def close(self) -> None:
        self._kafka_admin = None  # the admin client has no close: its threads end with it

    # -- sync: incidents (from the trigger through a thread, or from the poking sensor) ---

    def get_conn(self):
        """A psycopg2 connection (not autocommit) to the ``postgres_conn_id`` database."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=self.postgres_conn_id).get_conn()

    def open_incident(self, subject: str, problem: str, reason: str, figures: dict, opened_by: str, send) -> int | None:
        from globalmart.streaming.incidents import open_incident

        with closing(self.get_conn()) as conn:
            return open_incident(conn, subject, problem, reason, figures, opened_by, send)

    def close_incident(self, subject: str, problem: str, closed_by: str, send) -> int | None:
        from globalmart.streaming.incidents import close_incident

        with closing(self.get_conn()) as conn:
            return close_incident(conn, subject, problem, closed_by, send)

    def reconcile(self, findings: Sequence[Finding], open_incidents: set[tuple[str, str]], by: str, send) -> list[str]:
        """Open an incident (one email) for each finding not yet open and close (one recovery
        email) each open one no longer found; what was done, for the log."""
        done = []
        wanted = {finding.key: finding for finding in findings}
        for key, finding in sorted(wanted.items()):
            if key not in open_incidents:
                opened = self.open_incident(*key, finding.reason, finding.figures, by, send)
                done.append(f"{key[0]} {key[1]}: {finding.reason}"
                            + (f" (incident #{opened} emailed)" if opened else " (incident already open)"))
        for subject, problem in sorted(open_incidents - set(wanted)):
            closed = self.close_incident(subject, problem, by, send)
            done.append(f"{subject} {problem} cleared" + (f" (incident #{closed} closed, recovery emailed)" if closed else ""))
        return done
