"""Decisions in PostgreSQL (migration 0011): opened, started, waiting, closed.

The store works in the caller's transaction: the caller commits. ``decisions_one_open`` (a
partial unique index) refuses a second open decision about one product or anomaly even if two
writers raced past the policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg2.extras import RealDictCursor

from globalmart.alerting.messages import AlertMessage, AnomalyAlert, StockAlert
from globalmart.decisions.policy import FRAUD, RESTOCK, Answer, DecisionState, Opening, Step, Subject
from globalmart.settings import Settings

STATE = """
SELECT kind, subject_key, decision_id, status, closed_at
FROM decisions
JOIN unnest(%s::text[], %s::text[]) AS wanted (kind, subject_key) USING (kind, subject_key)
WHERE status = 'open' OR closed_at > %s
"""

OPEN = """
INSERT INTO decisions (decision_id, kind, subject_key, dag_id, alert_id, facts, suggested_quantity, status, opened_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'open', %s)
ON CONFLICT DO NOTHING
"""

JOIN = """
UPDATE decisions SET joined_alert_ids = array_append(joined_alert_ids, %s)
WHERE decision_id = %s AND NOT %s = ANY(joined_alert_ids) AND alert_id <> %s
"""

RECENT_SALES = """
SELECT coalesce(sum(units), 0) FROM product_window_sales
WHERE granularity = '1m' AND product_id = %s AND window_start >= %s
"""

STOCK_NOW = "SELECT stock FROM inventory_stock WHERE product_id = %s"

COLUMNS = ("decision_id", "kind", "subject_key", "dag_id", "alert_id", "joined_alert_ids", "facts",
           "suggested_quantity", "status", "opened_at", "run_started_at", "waiting_since", "respond_by", "outcome",
           "quantity", "decided_by", "decided_by_id", "decided_at", "timed_out", "escalated_at", "restock_event_id",
           "restock_sent_at", "closed_at")


@dataclass(frozen=True)
class Decision:
    decision_id: str
    kind: str
    subject_key: str
    dag_id: str
    alert_id: str
    joined_alert_ids: list[str]
    facts: dict
    suggested_quantity: int | None
    status: str
    opened_at: datetime
    run_started_at: datetime | None
    waiting_since: datetime | None
    respond_by: datetime | None
    outcome: str | None
    quantity: int | None
    decided_by: str | None
    decided_by_id: str | None
    decided_at: datetime | None
    timed_out: bool
    escalated_at: datetime | None
    restock_event_id: str | None
    restock_sent_at: datetime | None
    closed_at: datetime | None


def facts_of(alert: AlertMessage) -> dict:
    """What the decision form shows, taken from the alert that opened it."""
    d = alert.detail
    if isinstance(alert, StockAlert):
        return {"product_id": d.product_id, "product_name": d.product_name, "category": d.category,
                "stock": d.stock, "threshold": d.threshold, "alert_time": alert.event_time.isoformat()}
    if isinstance(alert, AnomalyAlert):
        return {"anomaly_id": d.anomaly_id, "rule": d.kind, "user_id": d.user_id, "country": d.country,
                "amount": d.amount, "score": d.score, "description": d.description,
                "transaction_ids": list(d.transaction_ids), "first_event_time": d.first_event_time.isoformat(),
                "last_event_time": d.last_event_time.isoformat()}
    raise TypeError(f"no decision about {type(alert).__name__}")


class DecisionStore:
    def __init__(self, conn):
        self.conn = conn

    def state(self, subjects: Sequence[Subject], closed_after: datetime) -> DecisionState:
        """Open decisions of ``subjects``, their last closing after ``closed_after``, open count."""
        subjects = sorted(set(subjects))
        with self.conn.cursor() as cur:
            cur.execute(STATE, ([k for k, _ in subjects], [s for _, s in subjects], closed_after))
            rows = cur.fetchall()
            cur.execute("SELECT count(*) FROM decisions WHERE status = 'open'")
            (open_count,) = cur.fetchone()
        open_by_subject = {(k, s): d for k, s, d, status, _ in rows if status == "open"}
        last_closed: dict[Subject, datetime] = {}
        for k, s, _d, status, closed_at in rows:
            if status == "closed":
                last_closed[(k, s)] = max(closed_at, last_closed.get((k, s), closed_at))
        return DecisionState(open_by_subject, last_closed, frozenset(), open_count)

    def known_ids(self, ids: Sequence[str]) -> frozenset[str]:
        with self.conn.cursor() as cur:
            cur.execute("SELECT decision_id FROM decisions WHERE decision_id = ANY(%s)", (list(ids),))
            return frozenset(i for (i,) in cur.fetchall())

    def recent_units_sold(self, product_id: str, since: datetime) -> int:
        with self.conn.cursor() as cur:
            cur.execute(RECENT_SALES, (product_id, since))
            return int(cur.fetchone()[0])

    def stock(self, product_id: str) -> int | None:
        with self.conn.cursor() as cur:
            cur.execute(STOCK_NOW, (product_id,))
            row = cur.fetchone()
        return row[0] if row else None

    def record(self, steps: Sequence[Step], settings: Settings, now: datetime,
               suggestions: dict[str, int]) -> list[str]:
        """Insert the opened decisions, append joined alerts; the ids really opened now."""
        opened = []
        with self.conn.cursor() as cur:
            for step in steps:
                if step.opening is Opening.OPENED:
                    dag_id = settings.decisions.restock_dag_id if step.kind == RESTOCK else settings.decisions.fraud_dag_id
                    cur.execute(OPEN, (step.decision_id, step.kind, step.subject_key, dag_id, step.alert.alert_id,
                                       json.dumps(facts_of(step.alert)), suggestions.get(step.decision_id), now))
                    if cur.rowcount:
                        opened.append(step.decision_id)
                elif step.opening is Opening.JOINED:
                    cur.execute(JOIN, (step.alert.alert_id, step.decision_id, step.alert.alert_id, step.alert.alert_id))
        return opened

    def get(self, decision_id: str) -> Decision | None:
        with self.conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM decisions WHERE decision_id = %s", (decision_id,))
            row = cur.fetchone()
        return Decision(**row) if row else None

    def to_start(self, limit: int = 100) -> list[Decision]:
        """Open decisions whose DAG run is not known to exist yet, oldest first."""
        with self.conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM decisions WHERE run_started_at IS NULL AND status = 'open' "
                        "ORDER BY opened_at LIMIT %s", (limit,))
            return [Decision(**row) for row in cur.fetchall()]

    def mark_started(self, decision_id: str, at: datetime) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UPDATE decisions SET run_started_at = coalesce(run_started_at, %s) WHERE decision_id = %s",
                        (at, decision_id))

    def mark_waiting(self, decision_id: str, since: datetime, respond_by: datetime) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UPDATE decisions SET waiting_since = %s, respond_by = %s, "
                        "run_started_at = coalesce(run_started_at, %s) WHERE decision_id = %s",
                        (since, respond_by, since, decision_id))

    def mark_restock_sent(self, decision_id: str, event_id: str, at: datetime) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UPDATE decisions SET restock_event_id = %s, restock_sent_at = coalesce(restock_sent_at, %s) "
                        "WHERE decision_id = %s", (event_id, at, decision_id))

    def mark_escalated(self, decision_id: str, at: datetime) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UPDATE decisions SET escalated_at = coalesce(escalated_at, %s) WHERE decision_id = %s",
                        (at, decision_id))

    def close(self, decision_id: str, answer: Answer, at: datetime) -> bool:
        """Record the outcome; False when the decision was already closed (a retried task)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "UPDATE decisions SET status = 'closed', outcome = %s, quantity = %s, decided_by = %s, "
                "decided_by_id = %s, decided_at = %s, timed_out = %s, closed_at = %s "
                "WHERE decision_id = %s AND status = 'open'",
                (answer.outcome, answer.quantity, answer.decided_by, answer.decided_by_id, answer.decided_at,
                 answer.timed_out, at, decision_id))
            return cur.rowcount == 1


def reviewed_anomalies(conn) -> list[tuple[str, str | None, bool]]:
    """(rule, outcome of its latest closed review or None, whether that review timed out) of
    every anomaly scoring at least the review threshold at the time: the judged sample."""
    with conn.cursor() as cur:
        cur.execute("""
        SELECT a.kind, d.outcome, coalesce(d.timed_out, false)
        FROM anomalies a
        LEFT JOIN LATERAL (
            SELECT outcome, timed_out FROM decisions
            WHERE kind = %s AND subject_key = a.anomaly_id AND status = 'closed'
            ORDER BY closed_at DESC LIMIT 1
        ) d ON true
        """, (FRAUD,))
        return [(rule, outcome, timed_out) for rule, outcome, timed_out in cur.fetchall()]
