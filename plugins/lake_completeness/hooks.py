"""LakeProgressHook: what the lake's completeness is judged on.

The streaming supervision's hook (PostgreSQL ``postgres_default``, Kafka ``kafka_default`` through
the Kafka provider's admin client hook) plus the two figures it lacks: the raw archiver's latest
committed end offsets per query, and the offset of each partition's first record the broker
received at or after a moment (``list_offsets`` with a timestamp: Kafka's ``offsets_for_times``,
without a consumer or a group).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from globalmart.streaming.health import committed_offsets
from globalmart.warehouse.completeness import Offsets

from streaming_supervision.hooks import StreamingHealthHook

LATEST_END_OFFSETS = """
SELECT DISTINCT ON (query_name) end_offsets
FROM stream_progress
WHERE query_name = ANY($1::text[])
ORDER BY query_name, trigger_at DESC
"""


class LakeProgressHook(StreamingHealthHook):
    hook_name = "GlobalMart lake completeness"

    async def aarchived_offsets(self, pg, queries: Sequence[str]) -> Offsets:
        """Topic → partition → the next offset ``queries`` will read, from each one's latest progress."""
        archived: dict[str, dict[str, int]] = {}
        for row in await pg.fetch(LATEST_END_OFFSETS, list(queries)):
            end_offsets = json.loads(row["end_offsets"]) if row["end_offsets"] else None
            for topic, partitions in committed_offsets(end_offsets).items():
                archived.setdefault(topic, {}).update(partitions)
        return archived

    async def aoffsets_since(self, topics: Sequence[str], since_ms: int) -> tuple[Offsets, Offsets]:
        """(first offset received at or after ``since_ms``, -1 for none; high-water mark) of every
        partition of ``topics``."""
        return await asyncio.to_thread(self.offsets_since, list(topics), since_ms)

    def offsets_since(self, topics: list[str], since_ms: int) -> tuple[Offsets, Offsets]:
        from confluent_kafka.admin import OffsetSpec

        high_water = self.high_water_marks(topics)
        partitions = [(topic, int(partition)) for topic, marks in high_water.items() for partition in marks]
        return self._list_offsets(partitions, OffsetSpec.for_timestamp(since_ms)), high_water

    def _list_offsets(self, partitions: list[tuple[str, int]], spec) -> Offsets:
        from confluent_kafka import TopicPartition

        offsets: dict[str, dict[str, int]] = {}
        if partitions:
            wanted = {TopicPartition(topic, partition): spec for topic, partition in partitions}
            for partition, future in self._kafka_admin.list_offsets(wanted, request_timeout=10).items():
                offsets.setdefault(partition.topic, {})[str(partition.partition)] = future.result().offset
        return offsets
