"""Detection quality: the streaming apps' findings against the generator's ground truth.

An anomaly detection is a true positive when it shares a transaction with an injected anomaly
of the same kind; an injected anomaly is found when some detection of its kind shares one of
its transactions. A detected abandoned cart matches an injected one of the same user whose
session is among the cart's sessions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

ANOMALY_KINDS = ("high_value", "unusual_quantity", "rapid_fire_count", "rapid_fire_amount")
ABANDONMENT = "cart_abandoned"


@dataclass(frozen=True)
class Quality:
    kind: str
    truth: int
    detected: int
    true_positives: int  # detections that match a truth record
    found: int  # truth records matched by a detection

    @property
    def precision(self) -> float:
        return self.true_positives / self.detected if self.detected else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.truth if self.truth else 1.0

    def as_dict(self) -> dict:
        return {"kind": self.kind, "truth": self.truth, "detected": self.detected, "true_positives": self.true_positives,
                "found": self.found, "precision": round(self.precision, 4), "recall": round(self.recall, 4)}


def anomaly_quality(truth: list[dict], detections: list[dict], delivered: set[str] | None = None) -> list[Quality]:
    """``truth``: ground-truth records (kind, transaction_ids); ``detections``: anomalies rows (kind,
    transaction_ids). With ``delivered`` (the transaction ids that reached Kafka), recall counts only
    the injected anomalies whose transactions were all delivered: one whose transaction the
    generator broke on purpose (a dead letter now) cannot be asked for."""
    results = []
    for kind in ANOMALY_KINDS:
        owner = {}
        kind_truth = [t for t in truth if t["kind"] == kind]
        for index, record in enumerate(kind_truth):
            for tx in record["transaction_ids"]:
                owner[tx] = index
        expected = {i for i, t in enumerate(kind_truth) if delivered is None or set(t["transaction_ids"]) <= delivered}
        found, true_positives = set(), 0
        kind_detections = [d for d in detections if d["kind"] == kind]
        for detection in kind_detections:
            matched = {owner[tx] for tx in detection["transaction_ids"] if tx in owner}
            true_positives += bool(matched)
            found |= matched & expected
        results.append(Quality(kind, len(expected), len(kind_detections), true_positives, len(found)))
    return results


def abandonment_quality(truth: list[dict], detections: list[dict]) -> Quality:
    """``truth``: records (user_id, session_id); ``detections``: cart_abandonments rows (user_id, session_ids)."""
    by_user = defaultdict(set)
    records = [t for t in truth if t["kind"] == ABANDONMENT]
    for record in records:
        by_user[record["user_id"]].add(record["session_id"])
    found, true_positives = set(), 0
    for detection in detections:
        matched = by_user.get(detection["user_id"], set()) & set(detection["session_ids"])
        true_positives += bool(matched)
        found |= {(detection["user_id"], s) for s in matched}
    return Quality(ABANDONMENT, len(records), len(detections), true_positives, len(found))
