"""Reading the ``alerts`` topic for the alerts DAG: consume, email, then commit.

The DAG's task owns a consumer group of its own (``alerting.consumer_group``); the AssetWatcher
that wakes the DAG has another. This consumer commits a batch's offsets only after
:func:`globalmart.alerting.notifier.notify` has sent its emails and recorded them, and after
its malformed messages are in ``dead_letters``. A crash, a failed task or a restarted Airflow
therefore leaves the batch uncommitted: the next run reads it again and the notification
store (``alert_notifications``) recognises what was already emailed, so nothing is lost and
nothing is emailed twice.

The partitions are assigned (at the group's committed offsets), not subscribed: joining a group
costs a rebalance of several seconds, and only one run at a time reads (``max_active_runs=1``,
plus the notifier's advisory lock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from globalmart import db
from globalmart.alerting.messages import AlertMessage, MalformedAlert, parse_alert
from globalmart.alerting.notifier import notify
from globalmart.settings import Settings

log = logging.getLogger(__name__)

STAGE = "alerts_dag"  # the dead_letters.stage of alert messages the DAG could not read
KAFKA_TIMEOUT_SECONDS = 10.0
BATCH_WAIT_SECONDS = 1.0  # longest wait for a batch to fill once the topic is known to hold more
EMPTY_WAITS_BEFORE_STOPPING = 15  # batch waits that bring nothing although the end offset is further

DEAD_LETTER = """
INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, source_topic, stage, reason, payload, kafka_timestamp)
VALUES (%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s / 1000.0))
ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) DO NOTHING
"""


class ManualCommitConsumerHook(KafkaConsumerHook):
    """The provider's consumer hook (broker and security settings from the Airflow connection)
    for a consumer group that commits by hand: group id from settings, auto-commit off."""

    def __init__(self, topics: Sequence[str], group_id: str, kafka_config_id: str = "kafka_default"):
        super().__init__(topics=topics, kafka_config_id=kafka_config_id)
        self.group_id = group_id

    def _get_client(self, config) -> Consumer:
        return super()._get_client({
            **config,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a new group starts with every alert the topic still holds
        })

    def get_assigned_consumer(self) -> tuple[Consumer, dict[int, int]]:
        """A consumer assigned every partition of the topic at the group's committed offsets,
        and each partition's next offset to read."""
        (topic,) = self.topics
        consumer: Consumer = self.get_conn
        try:
            metadata = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_SECONDS).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
            committed = committed_offsets(consumer, partitions)
            start = {}
            for tp in committed:
                earliest = consumer.get_watermark_offsets(tp, timeout=KAFKA_TIMEOUT_SECONDS)[0]
                # nothing committed yet, or retention removed what was: start at the oldest alert kept
                tp.offset = earliest if tp.offset == OFFSET_INVALID else max(tp.offset, earliest)
                start[tp.partition] = tp.offset
            consumer.assign(committed)
        except BaseException:
            consumer.close()
            raise
        return consumer, start


COORDINATOR_NOT_READY = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                         KafkaError.COORDINATOR_LOAD_IN_PROGRESS)


def committed_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
    """The group's committed offsets. A broker that has just started may not yet have elected the
    group's coordinator: that error is retriable, so it is retried until the Kafka timeout."""
    deadline = time.monotonic() + KAFKA_TIMEOUT_SECONDS
    while True:
        try:
            return consumer.committed(partitions, timeout=KAFKA_TIMEOUT_SECONDS)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() not in COORDINATOR_NOT_READY and not error.retriable() or time.monotonic() > deadline:
                raise
            log.info("group coordinator not ready (%s): retrying", error.str())
            time.sleep(0.5)


@dataclass
class DrainReport:
    """What one run did with the alerts topic."""

    batches: int = 0
    messages: int = 0
    emails: int = 0
    emailed_alerts: int = 0
    suppressed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    committed: dict[int, int] = field(default_factory=dict)  # partition → next offset, as committed

    def as_dict(self) -> dict:
        return {**self.__dict__, "committed": {str(p): o for p, o in self.committed.items()}}


def split_messages(messages: Sequence[Message]) -> tuple[list[AlertMessage], list[tuple[Message, str]]]:
    """(the valid alerts in arrival order, the malformed messages with the reason)."""
    alerts, malformed = [], []
    for message in messages:
        try:
            alerts.append(parse_alert(message.value()))
        except MalformedAlert as bad:
            malformed.append((message, bad.reason))
    return alerts, malformed


def dead_letter(settings: Settings, malformed: Sequence[tuple[Message, str]]) -> None:
    """Keep unreadable alert messages whole, with the reason (idempotent by Kafka coordinates)."""
    if not malformed:
        return
    # imported here: the sink module brings pyarrow (1.3 s of every run's start, the latency users wait)
    from globalmart.streaming.sink import dead_letter_payload

    with db.connect(settings) as conn, conn.cursor() as cur:
        for message, reason in malformed:
            _kind, timestamp = message.timestamp()
            cur.execute(DEAD_LETTER, (
                message.topic(), message.partition(), message.offset(), message.topic(), STAGE, reason,
                dead_letter_payload(message.value()), timestamp if timestamp > 0 else None,
            ))
    for message, reason in malformed:
        log.warning("alert message at %s[%d]@%d is malformed, dead-lettered: %s",
                    message.topic(), message.partition(), message.offset(), reason)


def drain(settings: Settings) -> DrainReport:
    """Email every alert the group has not committed yet, batch by batch, until the topic's end."""
    topic = settings.kafka.alerts.name
    hook = ManualCommitConsumerHook([topic], settings.alerting.consumer_group, settings.alerting.kafka_conn_id)
    consumer, next_offset = hook.get_assigned_consumer()
    report = DrainReport()
    empty_waits = 0
    try:
        while True:
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=KAFKA_TIMEOUT_SECONDS, cached=False)[1]
                    for p in next_offset}
            behind = sum(max(0, ends[p] - next_offset[p]) for p in next_offset)
            if behind == 0:
                break
            log.info("%d alert messages to handle (batches of up to %d)", behind, settings.alerting.max_alerts_per_batch)
            started = time.monotonic()
            messages = consumer.consume(min(behind, settings.alerting.max_alerts_per_batch), timeout=BATCH_WAIT_SECONDS)
            for message in messages:
                if message.error() is not None:
                    raise KafkaException(message.error())
            if not messages:  # the fetch is on its way, or the offsets left hold no messages (transaction markers)
                empty_waits += 1
                if empty_waits >= EMPTY_WAITS_BEFORE_STOPPING:
                    log.warning("%d offsets short of the end but no message for %.0f s: stopping here, the next run "
                                "resumes from the committed offsets", behind, EMPTY_WAITS_BEFORE_STOPPING * BATCH_WAIT_SECONDS)
                    break
                continue
            empty_waits = 0
            alerts, malformed = split_messages(messages)
            dead_letter(settings, malformed)
            plan = notify(alerts, settings, datetime.now(UTC))
            for message in messages:
                next_offset[message.partition()] = max(next_offset[message.partition()], message.offset() + 1)
            # only now: every email of the batch is sent and recorded, every bad message kept
            commit = [TopicPartition(topic, p, o) for p, o in next_offset.items()]
            consumer.commit(offsets=commit, asynchronous=False)
            report.batches += 1
            report.messages += len(messages)
            report.emails += len(plan.deliveries)
            report.emailed_alerts += plan.emailed_alerts
            report.suppressed += len(plan.suppressed)
            report.duplicates += len(plan.duplicates)
            report.dead_lettered += len(malformed)
            report.committed = dict(next_offset)
            log.info("batch %d: %d messages, %d emails, %d malformed, committed %s (%.1f s)", report.batches,
                     len(messages), len(plan.deliveries), len(malformed), report.committed, time.monotonic() - started)
    finally:
        consumer.close()
    log.info("alerts topic drained: %s", report.as_dict())
    return report
