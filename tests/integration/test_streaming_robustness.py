"""Streaming that no record can stop, on the real broker, PostgreSQL and Spark.

- a property-based fuzz: hostile records of every class on every event topic (malformed, out of
  bounds, contract-valid extremes) and a record that the contract accepts but one sink cannot
  write, through all five apps: nothing stops, every record is in the marts or in dead_letters
  with its reason, and the marts equal a recomputation from the records the contract accepts;
- the same events delivered again, in one micro-batch and in a later one: each counts once;
- a mart whose table is gone fails and is restarted while the lake and the dead letters go on.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import psycopg2
import pytest

from globalmart.events import TOPIC_CONTRACTS, check_payload
from globalmart.generator import service
from globalmart.generator.publisher import Progress, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.streaming.clock import publish_ticks
from globalmart.streaming.control import poll_until
from globalmart.streaming.launch import start_all, stop_app
from tests.hostile_records import EVENT_TOPICS, hostile_sample
from tests.integration.test_streaming_apps import money, query, run_apps
from tests.kafka_helpers import produce_raw, read_all

RECORDS_PER_CLASS = 15  # of each of the four classes, on each of the four event topics
POISON_PRODUCT = "P-POISON"  # valid by the contract; the test's database refuses its stock history


def received(message) -> datetime:
    return datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC)


def judged(settings, key) -> tuple[list[tuple], list[tuple]]:
    """The topic's records as the contract judges them with the broker's timestamp:
    (accepted events with their coordinates, rejected (coordinates, reason))."""
    accepted, rejected = [], []
    for message in read_all(settings, key):
        reason, tick = check_payload(TOPIC_CONTRACTS[key], message.value() or b"", received(message))
        where = (message.topic(), message.partition(), message.offset())
        if reason:
            rejected.append((where, reason))
        elif not tick:
            accepted.append((where, orjson.loads(message.value())))
    return accepted, rejected


def distinct(events: list[tuple], id_key: str) -> list[dict]:
    """Each business id once: its first delivery."""
    first = {}
    for where, event in sorted(events, key=lambda item: (item[0][1], item[0][2])):
        first.setdefault(event[id_key], event)
    return list(first.values())


def minute_of(event) -> datetime:
    return datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).replace(second=0, microsecond=0)


def assert_sales_equal(settings, transactions):
    expected = defaultdict(lambda: [Decimal("0.00"), 0])
    for tx in transactions:
        total = sum((item["quantity"] * money(item["unit_price"]) for item in tx["items"]), Decimal("0.00"))
        expected[(minute_of(tx), tx["country"])][0] += total
        expected[(minute_of(tx), tx["country"])][1] += 1
    rows = query(settings, "SELECT window_start, country, revenue, transactions FROM sales_window_metrics "
                           "WHERE granularity = '1m' AND category = 'ALL'")
    assert {(w, c): [r, n] for w, c, r, n in rows} == dict(expected)


def assert_stock_equal(settings, transactions, restocks):
    movement = Counter()
    for tx in transactions:
        for item in tx["items"]:
            movement[item["product_id"]] -= item["quantity"]
    for restock in restocks:
        movement[restock["product_id"]] += restock["quantity"]
    history = dict(query(settings, "SELECT product_id, sum(units_restocked - units_sold) FROM inventory_history GROUP BY 1"))
    assert history == {p: m for p, m in movement.items() if m or p in history}
    stock = dict(query(settings, "SELECT product_id, stock - initial_stock FROM inventory_stock "
                                 "WHERE units_sold + units_restocked > 0"))
    assert stock == {p: m for p, m in movement.items() if p in stock}


def assert_lake_holds_each_once(spark, settings, key, id_key, events):
    lake = spark.read.parquet(str(settings.lake_dir / key)).select(id_key).collect()
    ids = [row[0] for row in lake]
    assert len(ids) == len(set(ids)), f"{key}: an event archived twice"
    assert set(ids) == {event[id_key] for event in events}


ID_OF = {"transactions": "transaction_id", "product_views": "event_id", "cart_events": "event_id", "inventory": "event_id"}


@pytest.fixture
def poisoned_env(stream_env):
    """The sandbox, whose stock history refuses one product: a sink failure no contract can see."""
    with psycopg2.connect(stream_env.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(f"ALTER TABLE inventory_history ADD CONSTRAINT test_poison CHECK (product_id <> '{POISON_PRODUCT}')")
    conn.close()
    service.load_catalog(stream_env)
    return stream_env


def poisoned_purchase(now: datetime) -> bytes:
    return json.dumps({
        "schema_version": 1, "event_time": now.isoformat().replace("+00:00", "Z"), "transaction_id": "T-poison",
        "user_id": "U-poison", "session_id": "S-poison", "country": "UK", "payment_method": "paypal",
        "items": [{"product_id": POISON_PRODUCT, "category": "Toys", "quantity": 1, "unit_price": 12.5}],
        "total_amount": 12.5,
    }).encode()


def test_hostile_records_of_every_class_stop_nothing_and_lose_nothing(poisoned_env, tmp_path, spark, monkeypatch):
    settings_ = poisoned_env
    monkeypatch.setenv("GLOBALMART_STREAMING__BATCH_RETRY_SECONDS", "0.2")
    now = datetime.now(UTC)
    seed = random.randrange(2**32)
    print(f"fuzz seed {seed} (tests.hostile_records.sample with it draws the same records)")
    sent = Counter()
    for key in EVENT_TOPICS:
        records = hostile_sample(key, now, RECORDS_PER_CLASS, seed)
        sent.update((key, kind) for kind, _ in records)
        produce_raw(poisoned_env, key, [(b"fuzz", payload) for _, payload in records])
    produce_raw(poisoned_env, "transactions", [(b"poison", poisoned_purchase(now))])
    publish_ticks(poisoned_env)
    print("fuzz records sent, per topic and class:", dict(sent))

    run_apps(settings_, tmp_path)  # every app exits 0: no query failed

    accepted, rejected = {}, []
    for key in EVENT_TOPICS:
        accepted[key], refused = judged(settings_, key)
        rejected += refused
    # every refused record is a dead letter with the contract's reason
    letters = {(t, p, o): (stage, reason) for t, p, o, stage, reason in query(
        settings_, "SELECT kafka_topic, kafka_partition, kafka_offset, stage, reason FROM dead_letters")}
    for where, reason in rejected:
        assert letters.get(where) == ("raw_archiver", reason), where
    # the poisoned purchase: counted by sales and anomalies, set aside by the stock alone
    transactions = distinct(accepted["transactions"], "transaction_id")
    poison = [where for where, event in accepted["transactions"] if event["transaction_id"] == "T-poison"]
    assert letters[poison[0]][0] == "inventory_tracker" and "test_poison" in letters[poison[0]][1]
    assert len(letters) == len(rejected) + 1
    failure = query(settings_, "SELECT attempts, isolated_records, resolved_at IS NOT NULL FROM stream_batch_failures "
                               "WHERE app = 'inventory_tracker'")
    assert failure == [(settings_.streaming.batch_attempts, 1, True)]
    alert = query(settings_, "SELECT kind, published_at IS NOT NULL, detail->'facts'->>'Dead letters' FROM alerts "
                             "WHERE kind = 'data_quality.isolated_records'")
    assert alert == [("data_quality.isolated_records", True, f"{poison[0][0]}:{poison[0][1]}:{poison[0][2]}")]

    assert_sales_equal(settings_, transactions)
    restocks = distinct(accepted["inventory"], "event_id")
    assert_stock_equal(settings_, [tx for tx in transactions if tx["transaction_id"] != "T-poison"], restocks)
    high = {tx["transaction_id"] for tx in transactions if tx["total_amount"] > settings_.thresholds.high_value_transaction}
    found = {ids[0] for ids, in query(settings_, "SELECT transaction_ids FROM anomalies WHERE kind = 'high_value'")}
    assert found == high
    for key in EVENT_TOPICS:
        assert_lake_holds_each_once(spark, settings_, key, ID_OF[key], distinct(accepted[key], ID_OF[key]))
    print("fuzz outcome: accepted", {k: len(v) for k, v in accepted.items()}, "dead letters", len(letters))


def test_events_delivered_again_count_once_in_every_mart_and_the_lake(stream_env, tmp_path, spark):
    """Every record of a generated day sent a second time (a producer retry, a replay): some land
    in the first micro-batch next to their original, the rest in a later one."""
    settings_ = stream_env
    service.load_catalog(settings_)
    config = TrafficConfig(mode="backfill", days=1, daily_transactions=600, seed=17, anomaly_rate=0.1)
    assert run(settings_, config, progress=Progress(10, enabled=False)).ok
    originals = {key: read_all(settings_, key) for key in EVENT_TOPICS}
    for key, messages in originals.items():  # half again before the first run: in the same micro-batch
        produce_raw(settings_, key, [(m.key(), m.value()) for m in messages[: len(messages) // 2]])
    publish_ticks(settings_)
    run_apps(settings_, tmp_path)
    first = {table: query(settings_, f"SELECT count(*) FROM {table}")[0][0]
             for table in ("sessions", "cart_abandonments", "anomalies", "inventory_history")}
    for key, messages in originals.items():  # everything again: in a later micro-batch
        produce_raw(settings_, key, [(m.key(), m.value()) for m in messages])
    publish_ticks(settings_)
    run_apps(settings_, tmp_path)

    events = {key: distinct(judged(settings_, key)[0], ID_OF[key]) for key in EVENT_TOPICS}
    transactions = events["transactions"]
    assert_sales_equal(settings_, transactions)
    assert_stock_equal(settings_, transactions, events["inventory"])
    assert query(settings_, "SELECT coalesce(sum(purchases), 0) FROM sessions")[0][0] == len(transactions)
    again = {table: query(settings_, f"SELECT count(*) FROM {table}")[0][0] for table in first}
    assert again == first and first["sessions"] > 0 and first["cart_abandonments"] > 0
    high = {tx["transaction_id"] for tx in transactions if tx["total_amount"] > settings_.thresholds.high_value_transaction}
    found = [ids[0] for ids, in query(settings_, "SELECT transaction_ids FROM anomalies WHERE kind = 'high_value'")]
    assert sorted(found) == sorted(high)
    for key in EVENT_TOPICS:
        assert_lake_holds_each_once(spark, settings_, key, ID_OF[key], events[key])


def test_a_failing_mart_is_restarted_while_the_lake_and_the_dead_letters_go_on(stream_env, tmp_path, spark, monkeypatch):
    settings_ = stream_env
    service.load_catalog(settings_)
    monkeypatch.setenv("GLOBALMART_STREAMING__ARCHIVE_TRIGGER_SECONDS", "2")
    monkeypatch.setenv("GLOBALMART_STREAMING__QUERY_RESTART_DELAY_SECONDS", "5")
    monkeypatch.setenv("GLOBALMART_STREAMING__BATCH_RETRY_SECONDS", "0.2")
    with psycopg2.connect(settings_.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE sales_window_metrics RENAME TO sales_window_metrics_away")
    conn.close()
    config = TrafficConfig(mode="backfill", days=1, daily_transactions=300, seed=5, malformed_rate=0.01)
    assert run(settings_, config, progress=Progress(10, enabled=False)).ok
    processes = start_all(settings_, tmp_path / "checkpoints", tmp_path / "logs", apps=("sales_metrics", "raw_archiver"))
    try:
        poll_until("the sales query failed", lambda: query(
            settings_, "SELECT 1 FROM stream_status WHERE query_name = 'sales_metrics.windows' AND status = 'failed'"), 300)
        # meanwhile the archiver keeps archiving and dead-lettering
        poll_until("dead letters written", lambda: query(settings_, "SELECT count(*) FROM dead_letters")[0][0] > 0, 300)
        poll_until("the lake written", lambda: (settings_.lake_dir / "transactions" / "_spark_metadata").is_dir(), 300)
        assert all(process.poll() is None for process in processes.values())
        with psycopg2.connect(settings_.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE sales_window_metrics_away RENAME TO sales_window_metrics")
        conn.close()
        transactions = distinct(judged(settings_, "transactions")[0], "transaction_id")
        poll_until("the restarted sales query caught up", lambda: query(
            settings_, "SELECT coalesce(sum(transactions), 0) FROM sales_window_metrics "
                       "WHERE granularity = '1m' AND category = 'ALL'")[0][0] == len(transactions), 300)
    finally:
        for process in processes.values():
            stop_app(process)
    assert_sales_equal(settings_, transactions)
    log = "".join(path.read_text(errors="replace") for path in (tmp_path / "logs").glob("*.log"))
    assert "sales_metrics.windows failed; restart 1 of" in log
