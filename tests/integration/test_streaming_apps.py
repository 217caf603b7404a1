"""The five streaming apps, spark-submitted against the real broker and PostgreSQL.

Generated traffic (with anomalies, and invalid records slipped past the generator) is
processed with ``--available-now``; every mart must equal a recomputation from the input.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from globalmart import db, quality
from globalmart.generator import service
from globalmart.generator.publisher import Progress, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.streaming.launch import APPS, start_app, stop_app
from tests.kafka_helpers import produce_raw, read_all

INVALID = [b"{not json", b'{"transaction_id": "T-x", "total_amount": -5}', b"\xff\x00binary"]


def query(settings, statement, params=()):
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def run_apps(settings, tmp_path, apps=APPS, timeout=600):
    processes = {app: start_app(settings, app, tmp_path / "checkpoints", tmp_path / "logs", available_now=True)
                 for app in apps}
    try:
        for app, process in processes.items():
            code = process.wait(timeout)
            log = (tmp_path / "logs" / f"{app}.log").read_text(errors="replace")
            assert code == 0, f"{app} exited {code}:\n{log[-4000:]}"
    finally:
        for process in processes.values():
            stop_app(process, kill=True)


def events(settings, key):
    return [orjson.loads(m.value()) for m in read_all(settings, key)
            if m.value() not in INVALID]


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def line_total(tx) -> Decimal:
    return sum((item["quantity"] * money(item["unit_price"]) for item in tx["items"]), Decimal("0.00"))


@pytest.fixture
def traffic(stream_env):
    """Yesterday at 2,500 transactions (about 32k events) with 10 % anomalies, a few invalid
    records, and one far-future event per shopper topic so that the watermark closes every
    session and cart."""
    settings = stream_env
    service.load_catalog(settings)
    config = TrafficConfig(mode="backfill", days=1, daily_transactions=2500, seed=31, anomaly_rate=0.1, malformed_rate=0.002)
    report = run(settings, config, progress=Progress(10, enabled=False))
    assert report.ok
    produce_raw(settings, "transactions", [(b"bad", value) for value in INVALID])
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    produce_raw(settings, "product_views", [(b"closer", json.dumps({
        "schema_version": 1, "event_time": later, "event_id": "E-closer", "user_id": "U-closer", "session_id": "S-closer",
        "country": "USA", "product_id": "P000001", "category": "c", "action": "view", "duration_seconds": 1}).encode())])
    produce_raw(settings, "cart_events", [(b"closer", json.dumps({
        "schema_version": 1, "event_time": later, "event_id": "E-closer2", "user_id": "U-closer", "session_id": "S-closer",
        "country": "USA", "action": "checkout", "quantity": 0, "cart_value": 0.0}).encode())])
    return settings, report


def test_apps_match_a_recomputation_of_their_input(traffic, tmp_path, spark):
    settings, report = traffic
    run_apps(settings, tmp_path)
    transactions = events(settings, "transactions")
    restocks = events(settings, "inventory")
    truth = events(settings, "ground_truth")

    # sales: every minute's totals per country, and every product's hour
    expected = defaultdict(lambda: [Decimal("0.00"), 0])
    products = defaultdict(int)
    for tx in transactions:
        minute = parse_time(tx["event_time"]).replace(second=0, microsecond=0)
        expected[(minute, tx["country"])][0] += line_total(tx)
        expected[(minute, tx["country"])][1] += 1
        hour = minute.replace(minute=0)
        for item in tx["items"]:
            products[(hour, item["product_id"])] += item["quantity"]
    rows = query(settings, "SELECT window_start, country, revenue, transactions FROM sales_window_metrics "
                           "WHERE granularity = '1m' AND category = 'ALL'")
    assert {(w, c): [r, n] for w, c, r, n in rows} == dict(expected)
    rows = query(settings, "SELECT window_start, product_id, units FROM product_window_sales WHERE granularity = '1h'")
    assert {(w, p): u for w, p, u in rows} == dict(products)

    # anomalies: the single-transaction rules exactly; the rapid-fire kinds against the ground truth
    high = {tx["transaction_id"] for tx in transactions if tx["total_amount"] > settings.thresholds.high_value_transaction}
    bulk = {tx["transaction_id"] for tx in transactions
            if max(i["quantity"] for i in tx["items"]) > settings.thresholds.unusual_quantity}
    detected = [{"kind": k, "transaction_ids": ids} for k, ids in query(settings, "SELECT kind, transaction_ids FROM anomalies")]
    assert {ids[0] for k, ids in ((d["kind"], d["transaction_ids"]) for d in detected) if k == "high_value"} == high
    assert {ids[0] for k, ids in ((d["kind"], d["transaction_ids"]) for d in detected) if k == "unusual_quantity"} == bulk
    sent = {tx["transaction_id"] for tx in transactions}
    for result in quality.anomaly_quality(truth, detected, delivered=sent):
        assert result.truth > 0 and result.precision == 1.0 and result.recall >= 0.95, result
    alerts = query(settings, "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM alerts WHERE app = 'anomaly_detector'")[0]
    scores = query(settings, "SELECT count(*) FROM anomalies WHERE score >= %s", (settings.thresholds.anomaly_alert_score,))[0][0]
    assert alerts == (0, scores) and scores > 0
    published = [orjson.loads(m.value()) for m in read_all(settings, "alerts")]
    assert len({a["alert_id"] for a in published if a["app"] == "anomaly_detector"}) == scores

    # inventory: initial stock - sold + restocked, for every product touched
    movement = Counter()
    for tx in transactions:
        for item in tx["items"]:
            movement[item["product_id"]] -= item["quantity"]
    for restock in restocks:
        movement[restock["product_id"]] += restock["quantity"]
    stock = dict(query(settings, "SELECT s.product_id, s.stock - c.initial_stock FROM inventory_stock s "
                                 "JOIN product_catalog c USING (product_id) WHERE s.units_sold + s.units_restocked > 0"))
    assert stock == dict(movement)
    wrong_state = query(settings, "SELECT count(*) FROM inventory_stock WHERE state <> CASE WHEN stock < %s THEN 'critical' "
                                  "WHEN stock < %s THEN 'low' ELSE 'ok' END",
                        (settings.thresholds.critical_stock, settings.thresholds.low_stock))[0][0]
    assert wrong_state == 0

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
