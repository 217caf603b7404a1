"""Anomaly rules: single-transaction rules in Spark SQL, rapid-fire bursts in per-user state."""

from datetime import timedelta

import pytest

from globalmart.settings import Thresholds
from spark_jobs.streaming.anomaly_detector import (
    Purchase,
    RapidFireRules,
    anomaly_alerts,
    anomaly_score,
    rapid_fire_anomalies,
    single_transaction_anomalies,
)
from tests.streaming_fixtures import TRANSACTION, at, transaction
from tests.streaming_harness import run_stream

T = Thresholds()
CHEAP = ("P1", "Home > Kitchen", 1, 20.0)


def purchase(seconds, amount=20.0, tx="T"):
    return Purchase(f"{tx}{seconds}", at(10, 0, seconds), amount, "USA", at(10, 0, seconds))


def test_score_is_half_at_the_threshold_and_rises_towards_one():
    assert anomaly_score(5000, 5000) == pytest.approx(0.5)
    assert anomaly_score(5001, 5000) > 0.5
    assert anomaly_score(8000, 5000) > 0.8 > anomaly_score(7500, 5000)
    assert anomaly_score(10**9, 5000) <= 1.0
    assert anomaly_score(0, 5000) == 0.0


def test_rapid_fire_count_is_one_burst_that_grows():
    rules = RapidFireRules(T)
    opened = [rules.add(purchase(s)) for s in (0, 10, 20, 30)]
    assert opened == [[], [], [], []]
    fifth = rules.add(purchase(40))
    assert [b.kind for b in fifth] == ["rapid_fire_count"]
    sixth = rules.add(purchase(50))
    assert sixth[0].anomaly_id == fifth[0].anomaly_id == "rapid_fire_count:T0"
    assert len(sixth[0].purchases) == 6


def test_four_a_minute_is_not_rapid_fire_but_five_within_sixty_seconds_is():
    rules = RapidFireRules(T)
    assert not any(rules.add(purchase(s)) for s in (0, 16, 32, 48, 64, 80))  # never 5 inside a minute
    assert RapidFireRules(T).add(purchase(0)) == []


def test_a_new_burst_after_a_quiet_minute_is_a_new_anomaly():
    rules = RapidFireRules(T)
    first = [rules.add(purchase(s)) for s in range(0, 50, 10)][-1][0].anomaly_id
    second = [rules.add(purchase(s)) for s in range(200, 250, 10)][-1][0].anomaly_id
    assert first != second == "rapid_fire_count:T200"


def test_rapid_fire_amount_over_five_minutes():
    rules = RapidFireRules(T)
    assert rules.add(purchase(0, 3500)) == [] and rules.add(purchase(100, 3500)) == []
    third = rules.add(purchase(230, 3500))
    assert [b.kind for b in third] == ["rapid_fire_amount"]
    assert RapidFireRules(T).add(purchase(0, 3500)) == []
    spaced = RapidFireRules(T)
    assert not any(spaced.add(purchase(s, 3500)) for s in (0, 200, 400))  # never over $10k inside 5 minutes
    assert RapidFireRules(T).add(purchase(0, 12_000)) == []  # one large transaction is a high-value anomaly

def test_state_round_trips():
    rules = RapidFireRules(T)
    for s in range(0, 50, 10):
        rules.add(purchase(s))
    again = RapidFireRules.from_state(T, rules.to_state())
    assert again.recent == rules.recent
    assert again.add(purchase(55))[0].anomaly_id == "rapid_fire_count:T0"
    assert again.expired(at(10, 0, 55) + timedelta(minutes=5, seconds=1))
    assert not again.expired(at(10, 0, 56))


def test_single_transaction_rules(spark):
    rows = [
        transaction(at(10), user="rich", lines=[("P9", "Electronics > TVs", 2, 3000.0)], tx_id="T-big"),
        transaction(at(10), user="bulk", lines=[("P1", "Home > Kitchen", 14, 5.0)], tx_id="T-bulk"),
        transaction(at(10), user="plain", lines=[("P1", "Home > Kitchen", 10, 400.0)], tx_id="T-plain"),
    ]
    found = {r["kind"]: r for r in single_transaction_anomalies(spark.createDataFrame(rows, TRANSACTION), T).collect()}
    assert set(found) == {"high_value", "unusual_quantity"}
    big, bulk = found["high_value"], found["unusual_quantity"]
    assert big["transaction_ids"] == ["T-big"] and big["observed"] == 6000.0
    assert big["description"] == "Transaction T-big of $6,000.00 is over the $5,000 high-value threshold"
    assert bulk["transaction_ids"] == ["T-bulk"] and bulk["observed"] == 14.0
    assert "14 units of P1" in bulk["description"]
    assert big["score"] == pytest.approx(anomaly_score(6000, 5000))


def test_rapid_fire_across_micro_batches_is_one_growing_anomaly(spark, tmp_path):
    burst = [transaction(at(10, 0, s), user="fast", lines=[CHEAP], tx_id=f"F{s}") for s in range(0, 80, 10)]
    calm = [transaction(at(10, 0, s), user="calm", lines=[CHEAP]) for s in (0, 30)]

    def build(transactions):
        return rapid_fire_anomalies(transactions.withWatermark("event_time", "1 minute"), T)

    result = run_stream(spark, tmp_path, {"transactions": (TRANSACTION, [burst[:3] + calm, burst[3:5], burst[5:]])}, build)
    assert {r["user_id"] for r in result.rows} == {"fast"}
    assert {r["anomaly_id"] for r in result.rows} == {"rapid_fire_count:F0"}
    last = result.rows[-1]
    assert last["transaction_ids"] == [f"F{s}" for s in range(0, 80, 10)]
    assert last["observed"] == 8.0 and last["score"] == pytest.approx(anomaly_score(8, 5))
    assert "8 transactions by fast within 70 s" in last["description"]


def test_alerts_only_at_or_above_the_alert_score():
    anomalies = [
        {"anomaly_id": "high_value:T1", "kind": "high_value", "score": 0.85, "last_event_time": at(10),
         "user_id": "U", "country": "USA", "transaction_ids": ["T1"], "first_event_time": at(10), "amount": 9000.0,
         "observed": 9000.0, "threshold": 5000.0, "description": "d"},
        {"anomaly_id": "high_value:T2", "kind": "high_value", "score": 0.6, "last_event_time": at(10),
         "user_id": "U", "country": "USA", "transaction_ids": ["T2"], "first_event_time": at(10), "amount": 5500.0,
         "observed": 5500.0, "threshold": 5000.0, "description": "d"},
    ]
    alerts = anomaly_alerts(anomalies, T)
    assert [a.alert_id for a in alerts] == ["anomaly:high_value:T1"]
    assert alerts[0].detail["transaction_ids"] == ["T1"]
