"""The generator against the real broker and PostgreSQL: no loss, no duplicates, dead letters."""

import threading
import uuid
from collections import Counter

import orjson
import pytest

from globalmart import db
from globalmart.events import TOPIC_CONTRACTS, validate_payload
from globalmart.generator import service
from globalmart.generator.malformed import MALFORMED_KINDS
from globalmart.generator.publisher import Progress, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.kafka_admin import delete_topics, ensure_topics, with_topic_prefix
from tests.kafka_helpers import read_all


@pytest.fixture
def topics(platform):
    """A private set of topics for one test, deleted afterwards."""
    settings = with_topic_prefix(platform, f"test_{uuid.uuid4().hex[:8]}_")
    ensure_topics(settings)
    yield settings
    delete_topics(settings, [t.name for t in settings.kafka.topics()])


def quiet():
    return Progress(10, enabled=False)


def test_produce_consume_round_trip_without_loss_or_duplicates(topics):
    report = run(topics, TrafficConfig(mode="fast", seed=21), max_events=30_000, progress=quiet())
    assert report.ok and report.events >= 30_000
    ids = Counter()
    for key in ("product_views", "cart_events", "transactions", "inventory", "ground_truth"):
        messages = read_all(topics, key)
        assert len(messages) == report.sent[key], key
        for message in messages:
            assert validate_payload(TOPIC_CONTRACTS[key], message.value()) is None
            event = orjson.loads(message.value())
            ids[event.get("event_id") or event.get("transaction_id") or event.get("record_id")] += 1
            if key != "inventory":  # keyed by user: one user's events stay in order on one partition
                assert message.key().decode() == event["user_id"]
    assert ids and max(ids.values()) == 1
    assert read_all(topics, "dead_letters") == []


def test_each_malformed_kind_lands_in_dead_letters_with_its_reason(topics):
    config = TrafficConfig(mode="fast", seed=22, malformed_rate=0.05)
    report = run(topics, config, max_events=20_000, progress=quiet())
    assert set(report.malformed_injected) == set(MALFORMED_KINDS)
    dead = [orjson.loads(m.value()) for m in read_all(topics, "dead_letters")]
    assert len(dead) == sum(report.malformed_injected.values()) == sum(report.dead_letters.values())
    for record in dead:
        assert validate_payload(TOPIC_CONTRACTS["dead_letters"], orjson.dumps(record)) is None
        assert record["stage"] == "generator" and record["payload"]
        assert record["source_topic"] in {getattr(topics.kafka, k).name for k in ("transactions", "product_views", "cart_events")}
    reasons = " | ".join(r["reason"] for r in dead)
    for expected in ("Invalid JSON", "Field required", "Input should be a valid", "greater than or equal to 0",
                     "differs from the sum of the lines", "Input should be 'USA'"):
        assert expected in reasons
    # nothing invalid reached the event topics
    for key in ("product_views", "cart_events", "transactions"):
        assert all(validate_payload(TOPIC_CONTRACTS[key], m.value()) is None for m in read_all(topics, key))


def test_paced_run_stops_cleanly_on_request(topics):
    stop = threading.Event()
    timer = threading.Timer(4.0, stop.set)
    # the 4 s count from the first publish, not from the catalog being built
    report = run(topics, TrafficConfig(mode="realtime", rate=1000, seed=23), stop=stop, progress=quiet(),
                 on_start=lambda *_: timer.start())
    assert report.ok and report.undelivered == 0
    assert 3000 <= report.events <= 5000  # 1,000/s for about 4 s
    assert len(read_all(topics, "transactions")) == report.sent["transactions"]


def test_catalog_loads_once_into_postgres(platform):
    assert db.upgrade(platform) == db.head_revision()
    service.load_catalog(platform)
    written, fingerprint = service.load_catalog(platform)
    assert written == 0
    with db.connect(platform) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT category), min(initial_stock) >= 0 FROM product_catalog "
                       "WHERE catalog_fingerprint = %s", (fingerprint,))
        assert cursor.fetchone() == (platform.catalog.products, platform.catalog.categories, True)
