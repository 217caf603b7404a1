"""The five streaming apps, spark-submitted against the real broker and PostgreSQL.

Generated traffic (with anomalies, and invalid records slipped past the generator) is
processed with ``--available-now`` by all apps in one Spark application (the local default);
every mart must equal a recomputation from the input, also after the application is killed
mid-stream and restarted from its checkpoints.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal

import orjson
import pytest

from globalmart import db, quality
from globalmart.generator import service
from globalmart.generator.publisher import Progress, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.kafka_admin import end_offsets
from globalmart.streaming.launch import APPS, start_all, stop_app
from globalmart.streaming.clock import publish_ticks
from tests.kafka_helpers import produce_raw, read_all

INVALID = [b"{not json", b'{"transaction_id": "T-x", "total_amount": -5}', b"\xff\x00binary"]


def query(settings, statement, params=()):
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def run_apps(settings, tmp_path, apps=APPS, timeout=600):
    processes = start_all(settings, tmp_path / "checkpoints", tmp_path / "logs", apps=apps, available_now=True)
    try:
        for name, process in processes.items():
            code = process.wait(timeout)
            log = (tmp_path / "logs" / f"{name}.log").read_text(errors="replace")
            assert code == 0, f"{name} exited {code}:\n{log[-4000:]}"
    finally:
        for process in processes.values():
            stop_app(process, kill=True)


def events(settings, key):
    """The topic's events as sent: neither the invalid records nor the platform's clock ticks."""
    return [event for event in (orjson.loads(m.value()) for m in read_all(settings, key) if m.value() not in INVALID)
            if "tick_id" not in event]


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def line_total(tx) -> Decimal:
    return sum((item["quantity"] * money(item["unit_price"]) for item in tx["items"]), Decimal("0.00"))


def assert_sales_match(settings, transactions):
    """Every minute's and every hour's totals per country, and every product's units per hour."""
    expected = {"1m": defaultdict(lambda: [Decimal("0.00"), 0]), "1h": defaultdict(lambda: [Decimal("0.00"), 0])}
    products = defaultdict(int)
    for tx in transactions:
        minute = parse_time(tx["event_time"]).replace(second=0, microsecond=0)
        for granularity, window in (("1m", minute), ("1h", minute.replace(minute=0))):
            expected[granularity][(window, tx["country"])][0] += line_total(tx)
            expected[granularity][(window, tx["country"])][1] += 1
        for item in tx["items"]:
            products[(minute.replace(minute=0), item["product_id"])] += item["quantity"]
    for granularity, totals in expected.items():
        rows = query(settings, "SELECT window_start, country, revenue, transactions FROM sales_window_metrics "
                               "WHERE granularity = %s AND category = 'ALL'", (granularity,))
        assert {(w, c): [r, n] for w, c, r, n in rows} == dict(totals), granularity
    rows = query(settings, "SELECT window_start, product_id, units FROM product_window_sales WHERE granularity = '1h'")
    assert {(w, p): u for w, p, u in rows} == dict(products)


def assert_single_transaction_anomalies_match(settings, transactions) -> list[dict]:
    """High-value and unusual-quantity anomalies are exactly the transactions breaking those rules."""
    high = {tx["transaction_id"] for tx in transactions if tx["total_amount"] > settings.thresholds.high_value_transaction}
    bulk = {tx["transaction_id"] for tx in transactions
            if max(i["quantity"] for i in tx["items"]) > settings.thresholds.unusual_quantity}
    detected = [{"kind": k, "transaction_ids": ids} for k, ids in query(settings, "SELECT kind, transaction_ids FROM anomalies")]
    assert sorted(d["transaction_ids"][0] for d in detected if d["kind"] == "high_value") == sorted(high)
    assert sorted(d["transaction_ids"][0] for d in detected if d["kind"] == "unusual_quantity") == sorted(bulk)
    return detected


def assert_stock_matches(settings, transactions, restocks):
    """Initial stock - sold + restocked for every product touched, each in the right state."""
    movement = Counter()
    for tx in transactions:
        for item in tx["items"]:
            movement[item["product_id"]] -= item["quantity"]
    for restock in restocks:
        movement[restock["product_id"]] += restock["quantity"]
    stock = dict(query(settings, "SELECT s.product_id, s.stock - c.initial_stock FROM inventory_stock s "
                                 "JOIN product_catalog c USING (product_id) WHERE s.units_sold + s.units_restocked > 0"))
    assert stock == dict(movement)
    history = dict(query(settings, "SELECT product_id, sum(units_restocked - units_sold) FROM inventory_history GROUP BY 1"))
    assert history == dict(movement)  # one history row per product and batch, no batch twice
    wrong_state = query(settings, "SELECT count(*) FROM inventory_stock WHERE state <> CASE WHEN stock < %s THEN 'critical' "
                                  "WHEN stock < %s THEN 'low' ELSE 'ok' END",
                        (settings.thresholds.critical_stock, settings.thresholds.low_stock))[0][0]
    assert wrong_state == 0


@pytest.fixture
def traffic(stream_env):
    """Yesterday at 2,500 transactions (about 32k events) with 10 % anomalies, a few invalid
    records, and a clock tick on every partition so that the watermark closes every
    session and cart."""
    settings = stream_env
    service.load_catalog(settings)
    config = TrafficConfig(mode="backfill", days=1, daily_transactions=2500, seed=31, anomaly_rate=0.1, malformed_rate=0.002)
    report = run(settings, config, progress=Progress(10, enabled=False))
    assert report.ok
    produce_raw(settings, "transactions", [(b"bad", value) for value in INVALID])
    publish_ticks(settings)  # now: every session and cart of the past closes
    return settings, report


def test_apps_match_a_recomputation_of_their_input(traffic, tmp_path, spark):
    settings, report = traffic
    run_apps(settings, tmp_path)
    transactions = events(settings, "transactions")
    restocks = events(settings, "inventory")
    truth = events(settings, "ground_truth")

    assert_sales_match(settings, transactions)

    # anomalies: the single-transaction rules exactly; the rapid-fire kinds against the ground truth
    detected = assert_single_transaction_anomalies_match(settings, transactions)
    sent = {tx["transaction_id"] for tx in transactions}
    for result in quality.anomaly_quality(truth, detected, delivered=sent):
        assert result.truth > 0 and result.precision == 1.0 and result.recall >= 0.95, result
    alerts = query(settings, "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM alerts WHERE app = 'anomaly_detector'")[0]
    scores = query(settings, "SELECT count(*) FROM anomalies WHERE score >= %s", (settings.thresholds.anomaly_alert_score,))[0][0]
    assert alerts == (0, scores) and scores > 0
    published = [orjson.loads(m.value()) for m in read_all(settings, "alerts")]
    assert len({a["alert_id"] for a in published if a["app"] == "anomaly_detector"}) == scores

    assert_stock_matches(settings, transactions, restocks)

    # sessions: every purchase belongs to exactly one closed session; abandonment against the truth
    purchases = query(settings, "SELECT coalesce(sum(purchases), 0) FROM sessions")[0][0]
    assert purchases == len(transactions)
    carts = [{"user_id": u, "session_ids": s} for u, s in query(settings, "SELECT user_id, session_ids FROM cart_abandonments")]
    abandoned = quality.abandonment_quality(truth, carts)
    assert abandoned.truth > 0 and abandoned.precision >= 0.95 and abandoned.recall >= 0.95, abandoned

    # dead letters: the generator's rejects and the records slipped past it, each with its reason
    dead = query(settings, "SELECT stage, reason, payload FROM dead_letters")
    by_stage = Counter(stage for stage, _, _ in dead)
    assert by_stage == {"generator": sum(report.dead_letters.values()), "raw_archiver": len(INVALID)}
    assert any("Invalid JSON" in reason for _, reason, _ in dead)

    # the lake: every valid event once, partitioned by event date and hour
    lake = spark.read.parquet(str(settings.lake_dir / "transactions"))
    assert lake.count() == len(transactions) == lake.select("transaction_id").distinct().count()
    assert {"event_date", "event_hour", "kafka_offset"} <= set(lake.columns)

    # every query recorded its batches and its progress
    committed = dict(query(settings, "SELECT app, count(*) FROM stream_commits GROUP BY app"))
    assert set(committed) == set(APPS)
    assert query(settings, "SELECT count(DISTINCT query_name) FROM stream_progress")[0][0] >= 10


def wait_for_commits(settings, at_least: dict[str, int], timeout=300):
    """Until each app has committed at least its number of batches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = dict(query(settings, "SELECT app, count(*) FROM stream_commits GROUP BY app"))
        if all(counts.get(app, 0) >= n for app, n in at_least.items()):
            return counts
        time.sleep(1)
    raise AssertionError(f"apps did not commit {at_least} batches in {timeout} s: {counts}")


def wait_until_caught_up(settings, apps, timeout=300):
    """Until every query of ``apps`` has processed its topics to their end offsets."""
    ends = end_offsets(settings, ["transactions", "inventory"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(settings, "SELECT DISTINCT ON (query_name) query_name, end_offsets FROM stream_progress "
                               "WHERE app = ANY(%s) ORDER BY query_name, trigger_at DESC", (list(apps),))
        behind = [name for name, offsets in rows
                  if any(offsets_of_topic != ends[topic] for source in offsets for topic, offsets_of_topic in source.items())]
        if len(rows) >= len(apps) and not behind:
            return
        time.sleep(1)
    raise AssertionError(f"still behind after {timeout} s: {behind}")


def test_killed_apps_resume_from_their_checkpoints_without_loss_or_duplicates(stream_env, tmp_path):
    settings = stream_env
    service.load_catalog(settings)
    apps = ("sales_metrics", "inventory_tracker", "anomaly_detector")
    checkpoints, logs = tmp_path / "checkpoints", tmp_path / "logs"
    stop = threading.Event()
    generator = threading.Thread(target=run, args=(settings, TrafficConfig(mode="realtime", rate=500, seed=41, anomaly_rate=0.05)),
                                 kwargs={"stop": stop, "progress": Progress(10, enabled=False)})
    generator.start()
    processes = {}
    try:
        processes = start_all(settings, checkpoints, logs, apps=apps)
        before = wait_for_commits(settings, {app: 3 for app in apps})
        for process in processes.values():
            assert stop_app(process, kill=True) == -signal.SIGKILL  # mid-stream: traffic keeps coming
        processes = start_all(settings, checkpoints, logs, apps=apps)
        after = wait_for_commits(settings, {app: before[app] + 3 for app in apps})  # each resumed
        stop.set()
        generator.join(60)
        wait_until_caught_up(settings, apps)
        for process in processes.values():
            assert stop_app(process) == 0
    finally:
        stop.set()
        for process in processes.values():
            stop_app(process, kill=True)
    assert all(after[app] > before[app] for app in apps)

    transactions = events(settings, "transactions")
    assert transactions
    assert_sales_match(settings, transactions)
    assert_stock_matches(settings, transactions, events(settings, "inventory"))
    assert_single_transaction_anomalies_match(settings, transactions)
