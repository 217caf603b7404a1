"""LakeCompletenessTrigger: waits in the triggerer until the lake is archived past a cutoff, or a deadline.

Every ``poll_interval`` seconds it reads the raw archiver's committed end offsets from PostgreSQL
and the partitions' offsets at the cutoff and high-water marks from Kafka, and judges them with
:func:`globalmart.warehouse.completeness.assess`. It fires once: ``complete``, or ``timeout``
when ``deadline`` passes first, with what is still behind. PostgreSQL or Kafka unreachable is
retried until the deadline (then reported as the reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
from airflow.triggers.base import BaseTrigger, TriggerEvent
from confluent_kafka import KafkaException

from globalmart.warehouse.completeness import Completeness, assess

from lake_completeness.hooks import LakeProgressHook

COMPLETE, TIMEOUT = "complete", "timeout"


class LakeCompletenessTrigger(BaseTrigger):
    """
    :param topics: the Kafka topics whose every partition must be archived
    :param queries: the archiver's queries writing them (``stream_progress.query_name``)
    :param cutoff: ISO time the lake must be archived up to (the last day's end + grace)
    :param deadline: ISO time to give up at
    :param poll_interval: seconds between checks
    """

    def __init__(self, topics: list[str], queries: list[str], cutoff: str, deadline: str, poll_interval: float = 30.0,
                 postgres_conn_id: str = "postgres_default", kafka_conn_id: str = "kafka_default"):
        super().__init__()
        self.topics = list(topics)
        self.queries = list(queries)
        self.cutoff = cutoff
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.postgres_conn_id = postgres_conn_id
        self.kafka_conn_id = kafka_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"topics": self.topics, "queries": self.queries, "cutoff": self.cutoff, "deadline": self.deadline,
             "poll_interval": self.poll_interval, "postgres_conn_id": self.postgres_conn_id,
             "kafka_conn_id": self.kafka_conn_id},
        )

    def hook(self) -> LakeProgressHook:
        return LakeProgressHook(postgres_conn_id=self.postgres_conn_id, kafka_conn_id=self.kafka_conn_id)

    async def look(self, hook: LakeProgressHook, pg) -> Completeness:
        """One judgement of the lake against the cutoff."""
        cutoff = datetime.fromisoformat(self.cutoff)
        now = datetime.now(UTC)
        if now < cutoff:
            return assess(self.topics, cutoff, now, {}, {}, {})
        archived = await hook.aarchived_offsets(pg, self.queries)
        first_after_cutoff, high_water = await hook.aoffsets_since(self.topics, int(cutoff.timestamp() * 1000))
        return assess(self.topics, cutoff, now, first_after_cutoff, high_water, archived)

    async def look_now(self) -> Completeness:
        """One judgement on connections of its own (the sensor, before deferring)."""
        hook = self.hook()
        pg = await hook.aget_postgres()
        try:
            return await self.look(hook, pg)
        finally:
            await pg.close()
            hook.close()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        deadline = datetime.fromisoformat(self.deadline)
        pg = None
        last = "no check done yet"
        try:
            while True:
                try:
                    if pg is None or pg.is_closed():
                        pg = await hook.aget_postgres()
                    result = await self.look(hook, pg)
                    last = result.summary()
                    self.log.info("%s", last)
                    if result.complete:
                        yield TriggerEvent({"status": COMPLETE, "summary": last})
                        return
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaException) as exc:
                    last = f"could not check the lake: {exc}"
                    self.log.warning("%s; retrying in %s s", last, self.poll_interval)
                    if pg is not None:
                        pg.terminate()
                        pg = None
                if datetime.now(UTC) >= deadline:
                    yield TriggerEvent({"status": TIMEOUT, "summary": last})
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            if pg is not None:
                await pg.close()
            await asyncio.to_thread(hook.close)
