"""Replaying dead letters (globalmart.dead_letters.replay) against real PostgreSQL and Kafka, in a sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from globalmart.dead_letters import DeadLetterId, ReplayRequest, replay
from tests.kafka_helpers import read_all

BROKEN_COUNTRY = "Atlantis"
# an hour ago: a replayed event is judged when it is sent again, and must be recent enough then
HAPPENED = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")


def transaction(transaction_id: str, country: str) -> dict:
    return {
        "schema_version": 1, "event_time": HAPPENED, "transaction_id": transaction_id,
        "user_id": "U-replay", "session_id": "S-replay", "country": country, "payment_method": "paypal",
        "items": [{"product_id": "P000001", "category": "Books", "quantity": 2, "unit_price": 10.5}],
        "total_amount": 21.0,
    }


@pytest.fixture
def dead_letters(stream_env):
    """Three dead letters of the sandbox's transactions topic: two fixable, one hopeless."""
    topic = stream_env.kafka.transactions.name
    detected = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        (topic, 0, 10, "country: Input should be 'USA', ...", json.dumps(transaction("T-fix-1", BROKEN_COUNTRY))),
        (topic, 0, 11, "country: Input should be 'USA', ...", json.dumps(transaction("T-fix-2", BROKEN_COUNTRY))),
        (topic, 1, 12, "Invalid JSON", "{truncated"),
    ]
    with psycopg2.connect(stream_env.postgres.dsn()) as conn, conn.cursor() as cur:
        for kafka_topic, partition, offset, reason, payload in rows:
            cur.execute(
                "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, source_topic, stage, reason, payload, "
                "detected_at) VALUES (%s, %s, %s, %s, 'raw_archiver', %s, %s, %s)",
                (kafka_topic, partition, offset, kafka_topic, reason, payload, detected),
            )
    return stream_env


def rows(settings) -> dict[int, tuple]:
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT kafka_offset, reason, original_reason, replayed_at IS NOT NULL FROM dead_letters")
        return {offset: rest for offset, *rest in cur.fetchall()}


def fix_payload(settings, offset: int, payload: dict) -> None:
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("UPDATE dead_letters SET payload = %s WHERE kafka_offset = %s", (json.dumps(payload), offset))


def test_a_fixed_event_is_republished_once_and_the_rest_keep_their_new_reason(dead_letters):
    settings = dead_letters
    topic = settings.kafka.transactions.name

    still_broken = replay(settings, ReplayRequest(source_topic=topic))
    assert (still_broken.examined, sum(still_broken.republished.values())) == (3, 0)
    after_first = rows(settings)
    assert after_first[10][0].startswith("country: Input should be 'USA'")  # the current reason, in full
    assert after_first[10][0] != after_first[10][1]
    assert after_first[10][1] == "country: Input should be 'USA', ..."  # the first reason is kept
    assert after_first[12][0].startswith("event: Invalid JSON") and after_first[12][1] == "Invalid JSON"
    assert not any(replayed for _, _, replayed in after_first.values())
    assert read_all(settings, "transactions") == []

    fix_payload(settings, 10, transaction("T-fix-1", "Germany"))  # an operator corrects one record
    dry = replay(settings, ReplayRequest(source_topic=topic, dry_run=True))
    assert dry.as_dict()["republished_ids"] == [f"{topic}:0:10"]
    assert read_all(settings, "transactions") == [] and not rows(settings)[10][2]

    report = replay(settings, ReplayRequest(source_topic=topic))
    assert report.as_dict()["republished"] == 1 and report.as_dict()["still_invalid"] == 2
    (message,) = read_all(settings, "transactions")
    assert json.loads(message.value()) == transaction("T-fix-1", "Germany")
    assert message.key() == b"U-replay"
    assert rows(settings)[10][2] is True

    again = replay(settings, ReplayRequest(source_topic=topic))  # a second run sends nothing more
    assert again.as_dict()["republished"] == 0 and again.examined == 2
    assert len(read_all(settings, "transactions")) == 1


def test_only_the_chosen_ids_or_time_range_are_replayed(dead_letters):
    settings = dead_letters
    topic = settings.kafka.transactions.name
    fix_payload(settings, 10, transaction("T-fix-1", "France"))
    fix_payload(settings, 11, transaction("T-fix-2", "France"))

    later = replay(settings, ReplayRequest(detected_from=datetime.now(UTC) - timedelta(minutes=5)))
    assert later.examined == 0

    chosen = replay(settings, ReplayRequest(ids=(DeadLetterId(topic, 0, 11),)))
    assert chosen.as_dict()["republished_ids"] == [f"{topic}:0:11"]
    (message,) = read_all(settings, "transactions")
    assert json.loads(message.value())["transaction_id"] == "T-fix-2"
