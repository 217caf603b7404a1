"""Precision and recall against the ground truth."""

from globalmart.quality import abandonment_quality, anomaly_quality


def test_anomaly_matching_by_shared_transactions():
    truth = [
        {"kind": "rapid_fire_count", "transaction_ids": ["A1", "A2", "A3", "A4", "A5"]},
        {"kind": "rapid_fire_count", "transaction_ids": ["B1", "B2", "B3", "B4", "B5"]},
        {"kind": "high_value", "transaction_ids": ["H1"]},
        {"kind": "cart_abandoned", "transaction_ids": []},
    ]
    detections = [
        {"kind": "rapid_fire_count", "transaction_ids": ["X0", "A2", "A3", "A4", "A5", "A1"]},  # found, with one more
        {"kind": "rapid_fire_count", "transaction_ids": ["Z1", "Z2", "Z3", "Z4", "Z5"]},  # false positive
        {"kind": "high_value", "transaction_ids": ["A1"]},  # right transaction, wrong kind
    ]
    results = {q.kind: q for q in anomaly_quality(truth, detections)}
    rapid = results["rapid_fire_count"]
    assert (rapid.truth, rapid.detected, rapid.true_positives, rapid.found) == (2, 2, 1, 1)
    assert rapid.precision == 0.5 and rapid.recall == 0.5
    assert results["high_value"].precision == 0.0 and results["high_value"].recall == 0.0
    assert results["unusual_quantity"].precision == 1.0 == results["unusual_quantity"].recall  # nothing to find


def test_recall_leaves_out_anomalies_whose_transactions_never_reached_kafka():
    truth = [{"kind": "high_value", "transaction_ids": ["H1"]}, {"kind": "high_value", "transaction_ids": ["H2"]}]
    detections = [{"kind": "high_value", "transaction_ids": ["H1"]}]
    (high, *_) = anomaly_quality(truth, detections, delivered={"H1"})
    assert (high.truth, high.found, high.recall) == (1, 1, 1.0)


def test_abandonment_matching_by_user_and_session():
    truth = [
        {"kind": "cart_abandoned", "user_id": "U1", "session_id": "S1"},
        {"kind": "cart_abandoned", "user_id": "U2", "session_id": "S2"},
    ]
    detections = [{"user_id": "U1", "session_ids": ["S0", "S1"]}, {"user_id": "U3", "session_ids": ["S3"]}]
    result = abandonment_quality(truth, detections)
    assert (result.precision, result.recall) == (0.5, 0.5)
