"""Reading the real broker in tests."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition


def read_all(settings, topic_key):
    """Every message of a topic, read up to its end offsets."""
    name = getattr(settings.kafka, topic_key).name
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        messages, done = [], {p for p, end in ends.items() if end == 0}
        while len(done) < len(partitions):
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {name}"
            assert message.error() is None, message.error()
            messages.append(message)
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
        return messages
    finally:
        consumer.close()


def produce_raw(settings, topic_key, records: list[tuple[bytes, bytes]]) -> None:
    """Send (key, value) records as they are, without the generator's contract check, in order:
    tests expect their offsets (without idempotence a retried first send can land after the rest)."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True})
    for key, value in records:
        producer.produce(getattr(settings.kafka, topic_key).name, key=key, value=value)
    assert producer.flush(10) == 0
