"""The throttle state of the alert emails in PostgreSQL (migration 0003), so it survives restarts.

``alert_notifications`` holds every handled alert id with what became of it;
``alert_throttle`` holds when each (kind, subject key) was last emailed. The store works in
the caller's transaction: the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from psycopg2.extras import execute_values

from globalmart.alerting.messages import AlertMessage, StockAlert
from globalmart.alerting.policy import Delivery, Outcome, Suppressed, ThrottleHistory, throttle_key

# key of the session advisory lock that lets one notifier at a time read and write the state
NOTIFIER_LOCK = "globalmart.alert_notifications"

RECORD = """
INSERT INTO alert_notifications (alert_id, kind, subject_key, outcome, email_subject, event_time, decided_at)
VALUES %s
ON CONFLICT (alert_id) DO NOTHING
"""

MARK_SENT = """
INSERT INTO alert_throttle (kind, subject_key, last_sent_at, last_alert_id)
VALUES %s
ON CONFLICT (kind, subject_key) DO UPDATE
SET last_sent_at = EXCLUDED.last_sent_at, last_alert_id = EXCLUDED.last_alert_id
WHERE alert_throttle.last_sent_at <= EXCLUDED.last_sent_at
"""

LAST_SENT = """
SELECT t.kind, t.subject_key, t.last_sent_at
FROM alert_throttle t
JOIN unnest(%s::text[], %s::text[]) AS wanted (kind, subject_key) USING (kind, subject_key)
"""


class NotificationStore:
    def __init__(self, conn):
        self.conn = conn

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the notifier lock: a second notifier waits, then sees what the first one sent."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (NOTIFIER_LOCK,))
        try:
            yield
        except BaseException:
            self.conn.rollback()  # an aborted transaction would refuse the unlock
            raise
        finally:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (NOTIFIER_LOCK,))

    def history(self, alerts: Sequence[AlertMessage]) -> ThrottleHistory:
        """The part of the throttle state that concerns ``alerts``."""
        keys = sorted({throttle_key(alert) for alert in alerts})
        with self.conn.cursor() as cur:
            cur.execute("SELECT alert_id FROM alert_notifications WHERE alert_id = ANY(%s)",
                        ([alert.alert_id for alert in alerts],))
            handled = frozenset(alert_id for (alert_id,) in cur.fetchall())
            cur.execute(LAST_SENT, ([kind for kind, _ in keys], [key for _, key in keys]))
            last_sent = {(kind, key): sent_at for kind, key, sent_at in cur.fetchall()}
        return ThrottleHistory(last_sent, handled)

    def record_delivery(self, delivery: Delivery, email_subject: str, sent_at: datetime) -> None:
        """The alerts of a sent email are handled, and their keys were emailed at ``sent_at``."""
        self._record([(alert, delivery.outcome) for alert in delivery.alerts], email_subject, sent_at)
        with self.conn.cursor() as cur:
            execute_values(cur, MARK_SENT, [(*throttle_key(alert), sent_at, alert.alert_id) for alert in delivery.alerts])

    def record_suppressed(self, suppressed: Sequence[Suppressed], decided_at: datetime) -> None:
        self._record([(s.alert, s.outcome) for s in suppressed], None, decided_at)

    def _record(self, outcomes: Sequence[tuple[AlertMessage, Outcome]], email_subject: str | None,
                decided_at: datetime) -> None:
        if not outcomes:
            return
        rows = [(alert.alert_id, *throttle_key(alert), outcome.value, email_subject, alert.event_time, decided_at)
                for alert, outcome in outcomes]
        with self.conn.cursor() as cur:
            execute_values(cur, RECORD, rows)

    def with_catalog_facts(self, alerts: Sequence[AlertMessage]) -> list[AlertMessage]:
        """Stock alerts get their product's name and category from the catalog (when it is there)."""
        product_ids = sorted({a.detail.product_id for a in alerts if isinstance(a, StockAlert)})
        if not product_ids:
            return list(alerts)
        with self.conn.cursor() as cur:
            cur.execute("SELECT product_id, name, category FROM product_catalog WHERE product_id = ANY(%s)",
                        (product_ids,))
            catalog = {product_id: (name, category) for product_id, name, category in cur.fetchall()}
        return [
            alert.with_catalog_facts(*catalog[alert.detail.product_id])
            if isinstance(alert, StockAlert) and alert.detail.product_id in catalog else alert
            for alert in alerts
        ]
