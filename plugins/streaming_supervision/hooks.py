"""StreamingHealthHook: the figures that tell whether a streaming app is healthy, and its incidents.

It owns two connections: PostgreSQL (``postgres_default``: the heartbeat tables ``stream_status``
and ``stream_progress`` the apps' progress listener writes, and ``stream_incidents``) and Kafka
(``kafka_default``: the topics' high-water marks). The async methods serve the trigger in the
triggerer's event loop (asyncpg; confluent-kafka's blocking metadata calls run in a thread);
the sync ones serve the sensor on a worker (incident rows and their emails).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime

from airflow.sdk.bases.hook import BaseHook

from globalmart.streaming.health import Offsets, QueryFigures, committed_offsets

QUERIES = """
SELECT s.query_name, s.app, s.status, s.last_seen_at, p.done_at, p.end_offsets
FROM stream_status s
LEFT JOIN LATERAL (
    SELECT trigger_at + duration_ms * interval '1 millisecond' AS done_at, end_offsets
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
        self._consumer = None

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
            )
            for row in rows
        ]

    async def aopen_incidents(self, pg, subjects: Sequence[str]) -> dict[tuple[str, str], datetime]:
        """(subject, problem) → when it opened, of the open incidents of ``subjects``."""
        return {(row["subject"], row["problem"]): row["opened_at"] for row in await pg.fetch(OPEN_INCIDENTS, list(subjects))}

    async def ahigh_water_marks(self, topics: Sequence[str]) -> Offsets:
        """Topic → partition (as text) → next offset to be written, from the broker."""
        if not topics:
            return {}
        conn = await self.aget_connection(self.kafka_conn_id)
        return await asyncio.to_thread(self._high_water_marks, conn.extra_dejson, list(topics))

    def _high_water_marks(self, config: dict, topics: list[str]) -> Offsets:
        from confluent_kafka import Consumer, TopicPartition

        if self._consumer is None:
            # metadata only: no group membership, nothing committed
            self._consumer = Consumer({"bootstrap.servers": config["bootstrap.servers"],
                                       "group.id": "globalmart-streaming-supervisor", "enable.auto.commit": False})
        marks = {}
        for topic in topics:
            metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None:
                continue
            marks[topic] = {str(p): self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                            for p in metadata.partitions}
        return marks

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # -- sync: the sensor ----------------------------------------------------------------

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
