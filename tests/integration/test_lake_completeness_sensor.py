"""The daily batch's wait for a complete lake, on the real broker, PostgreSQL and SMTP (MailDev).

Records go to the test's private topics before and after a cutoff (their timestamps are the
broker's: LogAppendTime); the raw archiver's progress is recorded as its listener does, in the
test's own database. The sensor passes at once when the archiver is past the cutoff everywhere,
and otherwise defers, times out, emails what is behind and fails.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.exceptions import TaskDeferred
from confluent_kafka import Producer

from globalmart import db
from globalmart.platform.airflow_env import connections
from globalmart.settings import ENV_PREFIX, env_overrides, get_settings
from globalmart.streaming.control import poll_until
from globalmart.warehouse.completeness import archiver_query
from tests.mail_helpers import inbox_of


def produce(settings, topic: str, per_partition: dict[int, int]) -> datetime:
    """Send the records; the newest broker timestamp among them."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    stamps = []
    for partition, count in per_partition.items():
        for i in range(count):
            producer.produce(topic, value=f"record {i}".encode(), partition=partition,
                             on_delivery=lambda _err, message: stamps.append(message.timestamp()[1]))
    assert producer.flush(10) == 0
    return datetime.fromtimestamp(max(stamps) / 1000, UTC)


def record_progress(settings, topic_key: str, end_offsets: dict[str, int]) -> None:
    """A batch of the archiver's query for ``topic_key``, as its progress listener records it."""
    topic = getattr(settings.kafka, topic_key).name
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("""
            INSERT INTO stream_progress (query_name, run_id, batch_id, app, checkpoint_id, trigger_at, duration_ms,
                                         input_rows, end_offsets)
            VALUES (%s, %s, 0, 'raw_archiver', %s, now(), 100, 0, %s)
        """, (archiver_query(topic_key), str(uuid.uuid4()), str(uuid.uuid4()), json.dumps([{topic: end_offsets}])))


@pytest.fixture
def lake_day(stream_env, monkeypatch):
    """Yesterday, whose lake cutoff (end + grace) falls between two bursts of records: before it
    3, 3, 3 transactions and 4 product views; after it 2, 2, 0 transactions. The sensor's
    settings and its ``postgres_default`` are the test's."""
    transactions, views = stream_env.kafka.transactions.name, stream_env.kafka.product_views.name
    newest = max(produce(stream_env, transactions, {0: 3, 1: 3, 2: 3}), produce(stream_env, views, {0: 4}))
    # the cutoff just after the first burst, the second burst sent once the clock has passed it
    cutoff = newest + timedelta(milliseconds=1)
    poll_until("the clock past the cutoff", lambda: datetime.now(UTC) > cutoff, timeout=5, every=0.001)
    produce(stream_env, transactions, {0: 2, 1: 2})
    day = cutoff.date() - timedelta(days=1)
    grace = (cutoff - datetime.combine(cutoff.date(), datetime.min.time(), tzinfo=UTC)).total_seconds()
    recipient = f"lake-{uuid.uuid4().hex[:8]}@globalmart.local"
    for name, value in env_overrides(stream_env).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", json.dumps(connections(stream_env)["postgres_default"]))
    monkeypatch.setenv(f"{ENV_PREFIX}WAREHOUSE__COMPLETENESS_GRACE_SECONDS", str(grace))
    monkeypatch.setenv(f"{ENV_PREFIX}WAREHOUSE__COMPLETENESS_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv(f"{ENV_PREFIX}WAREHOUSE__COMPLETENESS_POLL_SECONDS", "0.5")
    monkeypatch.setenv(f"{ENV_PREFIX}ALERTING__RECIPIENTS", f'["{recipient}"]')
    get_settings.cache_clear()
    try:
        yield day, recipient
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def sensor(day):
    from lake_completeness.sensors import LakeCompletenessSensor

    return LakeCompletenessSensor(task_id="wait_for_complete_lake", last_day=day.isoformat())


def test_a_lake_archived_past_the_cutoff_passes_without_waiting(stream_env, lake_day):
    day, recipient = lake_day
    # the first record after the cutoff on partitions 0 and 1; all of quiet partition 2 and the views
    record_progress(stream_env, "transactions", {"0": 3, "1": 3, "2": 3})
    record_progress(stream_env, "product_views", {"0": 4, "1": 0, "2": 0})
    summary = sensor(day).execute({})
    assert summary.startswith("the lake is archived past ")


def test_a_lake_behind_defers_then_emails_and_fails(stream_env, lake_day):
    day, recipient = lake_day
    record_progress(stream_env, "transactions", {"0": 3, "1": 1, "2": 2})  # 2 behind, and 1 of quiet partition 2
    record_progress(stream_env, "product_views", {"0": 4, "1": 0, "2": 0})
    waiting = sensor(day)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})

    async def first_event():
        return await anext(deferred.value.trigger.run())

    event = asyncio.run(first_event())
    assert event.payload["status"] == "timeout"
    with pytest.raises(AirflowFailException) as failure:
        waiting.execute_complete({}, event.payload, **deferred.value.kwargs)
    transactions = stream_env.kafka.transactions.name
    behind = [f"{transactions} partition 1: archived up to offset 1, needs 3 (2 records behind)",
              f"{transactions} partition 2: archived up to offset 2, needs 3 (1 record behind)"]
    assert all(line in str(failure.value) for line in behind), failure.value
    (email,) = inbox_of(stream_env, recipient)
    assert email["subject"].startswith(f"[GlobalMart] Daily batch stopped: the lake is incomplete for {day}")
    assert all(line in email["text"] for line in behind)
    assert f"{stream_env.kafka.product_views.name} partition" not in email["text"]


def test_a_run_whose_lake_was_loaded_directly_is_not_held(lake_day):
    from lake_completeness.sensors import LakeCompletenessSensor

    day, _ = lake_day
    loaded = LakeCompletenessSensor(task_id="wait_for_complete_lake", last_day=day.isoformat(),
                                    lake_from_archiver="False")
    assert "not checked" in loaded.execute({})
