"""One poll of the ``alerts`` topic, emailed: the single call the alerts DAG makes.

Each email is recorded in its own transaction right after it is sent, so a crash in between
repeats at most the email in flight: alerts are delivered at least once, never lost. Commit
the Kafka offsets of the polled messages only after :func:`notify` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from globalmart import db
from globalmart.alerting.delivery import send
from globalmart.alerting.messages import AlertMessage
from globalmart.alerting.policy import NotificationPlan, Outcome, plan_notifications
from globalmart.alerting.rendering import render_delivery
from globalmart.alerting.store import NotificationStore
from globalmart.settings import Settings

log = logging.getLogger(__name__)


def _open_decisions(conn, alerts: Sequence[AlertMessage], settings: Settings, now: datetime) -> dict:
    """Critical stock and high-score anomalies open human decisions (``globalmart.decisions``),
    recorded before the emails that link to them; their DAG runs are started right away, and
    a failure to start leaves them for the next poll."""
    if not settings.decisions.enabled:
        return {}
    from globalmart.decisions.service import open_for_alerts, start_runs

    links = open_for_alerts(conn, alerts, settings, now)
    conn.commit()
    start_runs(settings)
    return links


def notify(alerts: Sequence[AlertMessage], settings: Settings, now: datetime) -> NotificationPlan:
    """Email ``alerts`` (in arrival order) as the throttle and digest rules say, at ``now``."""
    with db.connect(settings) as conn:
        store = NotificationStore(conn)
        with store.exclusive():
            alerts = store.with_catalog_facts(alerts)
            links = _open_decisions(conn, alerts, settings, now)
            plan = plan_notifications(alerts, store.history(alerts), now, settings)
            for delivery in plan.deliveries:
                email = render_delivery(delivery, settings, links)
                send(email, settings)
                store.record_delivery(delivery, email.subject, now)
                conn.commit()
                log.info("sent %r (%d alerts)", email.subject, len(delivery.alerts))
            store.record_suppressed(plan.suppressed, now)
            conn.commit()
    suppressed = [s.outcome for s in plan.suppressed]
    log.info(
        "%d alerts: %d emailed in %d emails, %d throttled, %d below the anomaly threshold, %d duplicates",
        len(alerts), plan.emailed_alerts, len(plan.deliveries), suppressed.count(Outcome.THROTTLED),
        suppressed.count(Outcome.BELOW_THRESHOLD), len(plan.duplicates),
    )
    return plan
