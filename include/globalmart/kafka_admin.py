"""Kafka topic management with confluent-kafka's AdminClient: topics come from settings."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic

from globalmart.settings import Settings, TopicSpec

log = logging.getLogger(__name__)


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})


def topic_config(topic: TopicSpec, min_insync_replicas: int = 1) -> dict[str, str]:
    """Every topic's records carry the time the broker appended them, not a time the producer
    claims: the contracts judge an event's time against it, so no producer can move it. An
    acknowledged write (acks=all) is on ``min_insync_replicas`` brokers."""
    return {
        "retention.ms": str(topic.retention_ms),
        "message.timestamp.type": "LogAppendTime",
        "min.insync.replicas": str(min_insync_replicas),
    }


def ensure_topics(settings: Settings, topics: list[TopicSpec] | None = None, timeout: float = 30) -> list[str]:
    """Create missing topics; grow partitions and align the configuration of existing ones.

    Returns the names of the topics created. Partitions are never reduced (Kafka cannot).
    """
    admin = admin_client(settings)
    wanted = {t.name: t for t in (topics or settings.kafka.topics())}
    existing = admin.list_topics(timeout=timeout).topics
    to_create = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=settings.kafka.replication_factor,
                 config=topic_config(t, settings.kafka.min_insync_replicas))
        for name, t in wanted.items()
        if name not in existing
    ]
    created = []
    for name, future in (admin.create_topics(to_create, request_timeout=timeout).items() if to_create else []):
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:  # created concurrently by someone else: fine
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    to_grow = [
        NewPartitions(name, t.partitions)
        for name, t in wanted.items()
        if name in existing and len(existing[name].partitions) < t.partitions
    ]
    for future in (admin.create_partitions(to_grow, request_timeout=timeout).values() if to_grow else []):
        future.result()
    to_align = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in topic_config(t, settings.kafka.min_insync_replicas).items()
            ],
        )
        for name, t in wanted.items()
        if name in existing
    ]
    for future in (admin.incremental_alter_configs(to_align).values() if to_align else []):
        future.result()
    if created:
        log.info("created Kafka topics: %s", ", ".join(created))
    return created


def with_topic_prefix(settings: Settings, prefix: str) -> Settings:
    """The same settings with every topic renamed ``<prefix><name>``: an isolated set of topics
    for a benchmark or a test run next to the live ones."""
    kafka = settings.kafka.model_copy(
        update={
            name: getattr(settings.kafka, name).model_copy(update={"name": prefix + getattr(settings.kafka, name).name})
            for name, field in type(settings.kafka).model_fields.items()
            if isinstance(field.default, TopicSpec)
        }
    )
    return settings.model_copy(update={"kafka": kafka})


def delete_topics(settings: Settings, names: list[str], timeout: float = 30) -> None:
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=timeout).topics
    doomed = [name for name in names if name in existing]
    for future in (admin.delete_topics(doomed, operation_timeout=timeout).values() if doomed else []):
        future.result()


def end_offsets(settings: Settings, topic_keys: list[str], timeout: float = 10) -> dict[str, dict[str, int]]:
    """Topic name → partition (as text, like Spark's offsets JSON) → next offset to be written."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "globalmart-offsets"})
    try:
        ends = {}
        for key in topic_keys:
            name = getattr(settings.kafka, key).name
            partitions = consumer.list_topics(name, timeout=timeout).topics[name].partitions
            ends[name] = {str(p): consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout)[1]
                          for p in partitions}
        return ends
    finally:
        consumer.close()
