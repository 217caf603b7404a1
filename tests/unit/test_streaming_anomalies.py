"""Anomaly rules: single-transaction rules, rapid-fire windows over recent purchases joined into bursts."""

import pytest

from globalmart.settings import Thresholds
from spark_jobs.streaming.anomaly_detector import (
    anomaly_alerts,
    anomaly_score,
    burst_record,
    bursts_from_windows,
    continue_recorded,
    flagged_windows,
    purchases_with_rule_hits,
    single_transaction_records,
)
from tests.streaming_fixtures import TRANSACTION, at, transaction

T = Thresholds()
CHEAP = ("P1", "Home > Kitchen", 1, 20.0)


def purchase(seconds, amount=20.0, tx=None, user="U1"):
    return {"transaction_id": tx or f"T{seconds}", "user_id": user, "event_time": at(10, 0, seconds), "amount": amount,
            "country": "USA", "received_at": at(10, 0, seconds)}


def window(kind, start_seconds, length, purchases, user="U1"):
    return {"kind": kind, "user_id": user, "window_start": at(10, 0, start_seconds),
            "window_end": at(10, 0, start_seconds + length), "purchases": purchases}


def test_score_is_half_at_the_threshold_and_rises_towards_one():
    assert anomaly_score(5000, 5000) == pytest.approx(0.5)
    assert anomaly_score(5001, 5000) > 0.5
    assert anomaly_score(8000, 5000) > 0.8 > anomaly_score(7500, 5000)
    assert anomaly_score(10**9, 5000) <= 1.0
    assert anomaly_score(0, 5000) == 0.0


def test_overlapping_flagged_windows_are_one_burst():
    first = [purchase(s) for s in (10, 20, 30, 40, 50)]
    flagged = [
        window("rapid_fire_count", 0, 60, first),
        window("rapid_fire_count", 5, 60, first + [purchase(62)]),
        window("rapid_fire_count", 300, 60, [purchase(s) for s in range(300, 350, 10)]),  # later: a new burst
        window("rapid_fire_count", 0, 60, first, user="U2"),
    ]
    bursts = bursts_from_windows(flagged)
    assert [(b.user_id, len(b.purchases)) for b in bursts] == [("U1", 6), ("U1", 5), ("U2", 5)]
    record = burst_record(bursts[0], T)
    assert record["anomaly_id"] == "rapid_fire_count:T10"
    assert record["transaction_ids"] == ["T10", "T20", "T30", "T40", "T50", "T62"]
    assert record["observed"] == 6.0 and record["score"] == pytest.approx(anomaly_score(6, 5))
    assert record["description"] == "6 transactions by U1 within 52 s (5 or more in a minute)"


def test_a_burst_continuing_a_recorded_anomaly_keeps_its_id_and_grows():
    recorded = [{"anomaly_id": "rapid_fire_count:T10", "kind": "rapid_fire_count", "user_id": "U1", "country": "USA",
                 "transaction_ids": ["T10", "T20", "T30", "T40", "T50"], "purchase_amounts": [20.0] * 5,
                 "purchase_times": [at(10, 0, s) for s in (10, 20, 30, 40, 50)], "last_event_time": at(10, 0, 50),
                 "last_received_at": at(10, 0, 50)}]
    (burst,) = bursts_from_windows([window("rapid_fire_count", 20, 60, [purchase(s) for s in (30, 40, 50, 55, 58)])])
    continue_recorded(burst, recorded)
    record = burst_record(burst, T)
    assert record["anomaly_id"] == "rapid_fire_count:T10"
    assert record["transaction_ids"] == ["T10", "T20", "T30", "T40", "T50", "T55", "T58"]
    (later,) = bursts_from_windows([window("rapid_fire_count", 600, 60, [purchase(s) for s in range(600, 650, 10)])])
    continue_recorded(later, recorded)  # ten minutes on: a new anomaly
    assert burst_record(later, T)["anomaly_id"] == "rapid_fire_count:T600"


def test_rapid_fire_amount_record():
    (burst,) = bursts_from_windows([window("rapid_fire_amount", 0, 300, [purchase(0, 3500.0), purchase(100, 3600.0),
                                                                         purchase(230, 3400.0)])])
    record = burst_record(burst, T)
    assert record["amount"] == 10_500.0 and record["observed"] == 10_500.0 and record["threshold"] == 10_000.0
    assert record["description"] == "$10,500.00 spent by U1 in 3 transactions within 3.8 min (more than $10,000 in five minutes)"


def test_single_transaction_rules(spark):
    rows = [
        transaction(at(10), user="rich", lines=[("P9", "Electronics > TVs", 2, 3000.0)], tx_id="T-big"),
        transaction(at(10), user="bulk", lines=[("P1", "Home > Kitchen", 14, 5.0)], tx_id="T-bulk"),
        transaction(at(10), user="plain", lines=[("P1", "Home > Kitchen", 10, 400.0)], tx_id="T-plain"),
        transaction(at(10), user="both", lines=[("P2", "Home > Kitchen", 12, 500.0)], tx_id="T-both"),
    ]
    purchases = [r.asDict(recursive=True) for r in purchases_with_rule_hits(spark.createDataFrame(rows, TRANSACTION), T).collect()]
    assert {p["transaction_id"] for p in purchases} == {"T-big", "T-bulk", "T-plain", "T-both"}  # every purchase, for rapid fire
    found = {r["anomaly_id"]: r for r in single_transaction_records(purchases)}
    assert set(found) == {"high_value:T-big", "unusual_quantity:T-bulk", "high_value:T-both", "unusual_quantity:T-both"}
    assert {r["kind"] for r in found.values() if r["user_id"] == "both"} == {"high_value", "unusual_quantity"}
    big, bulk = found["high_value:T-big"], found["unusual_quantity:T-bulk"]
    assert big["transaction_ids"] == ["T-big"] and big["observed"] == 6000.0 and big["amount"] == 6000.0
    assert big["description"] == "Transaction T-big of $6,000.00 is over the $5,000 high-value threshold"
    assert bulk["transaction_ids"] == ["T-bulk"] and bulk["observed"] == 14.0
    assert "14 units of P1" in bulk["description"]
    assert big["score"] == pytest.approx(anomaly_score(6000, 5000))


def flagged_by(purchases, new=None):
    windows = flagged_windows(purchases, {p["transaction_id"] for p in (new or purchases)}, T)
    return {(w["kind"], w["user_id"]) for w in windows}, windows


def test_rapid_fire_flags_bursts_only():
    fast = [purchase(s, tx=f"F{s}", user="fast") for s in range(0, 50, 10)]
    calm = [purchase(s, tx=f"C{s}", user="calm") for s in (0, 16, 32, 48, 64, 80)]  # six, but never five in a minute
    spender = [purchase(m * 60, 3500.0, tx=f"S{m}", user="spender") for m in (0, 1, 3)]
    whale = [purchase(120, 12_000.0, tx="W", user="whale")]  # one transaction: high value, not rapid fire
    flagged, windows = flagged_by(fast + calm + spender + whale)
    assert flagged == {("rapid_fire_count", "fast"), ("rapid_fire_amount", "spender")}
    bursts = bursts_from_windows(windows)
    assert sorted(sorted(b.purchases) for b in bursts) == [["F0", "F10", "F20", "F30", "F40"], ["S0", "S1", "S3"]]


def test_any_minute_is_exact_at_the_edges():
    within = [purchase(s, tx=f"A{s}") for s in (0, 15, 30, 45, 59)]  # 59 s apart: inside one minute
    apart = [purchase(s, tx=f"B{s}", user="U2") for s in (0, 15, 30, 45, 60)]  # 60 s apart: not
    assert flagged_by(within + apart)[0] == {("rapid_fire_count", "U1")}


def test_only_windows_with_a_new_purchase_are_flagged():
    """The burst's first four arrived in an earlier batch; the fifth, in this one, completes it,
    and a burst long recorded is not flagged again by an unrelated purchase."""
    old_burst = [purchase(s, tx=f"O{s}") for s in range(0, 50, 10)]
    later = purchase(400, tx="L")
    assert flagged_by(old_burst + [later], new=[later])[0] == set()
    first_four, fifth = old_burst[:4], old_burst[4]
    flagged, windows = flagged_by(old_burst, new=[fifth])
    assert flagged == {("rapid_fire_count", "U1")}
    assert {p["transaction_id"] for w in windows for p in w["purchases"]} == {p["transaction_id"] for p in first_four + [fifth]}


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
