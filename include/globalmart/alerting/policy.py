"""Which alerts of one poll become emails: deduplication, throttling and digests.

A pure function of the alerts, the throttle history and the time, so that a replay decides
the same way. The rules:

1. An alert whose ``alert_id`` was handled before (emailed, digested or suppressed), or that
   repeats within the poll, is a duplicate and changes nothing.
2. An anomaly scoring below ``thresholds.anomaly_alert_score`` is not emailed.
3. One email per throttle key — (kind, product) for stock, (kind, user) for anomalies,
   (kind, hour) for abandonment spikes — per ``alerting.throttle_minutes``: a key emailed
   less than that ago is throttled. Several alerts of one key in a poll give one email, about
   the latest of them (its facts are the current ones).
4. More emails due than ``alerting.digest_threshold`` are sent as one digest instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from globalmart.alerting.messages import AlertMessage, AnomalyAlert
from globalmart.settings import Settings

ThrottleKey = tuple[str, str]  # (kind, subject key)


class Outcome(StrEnum):
    SENT = "sent"
    DIGESTED = "digested"
    THROTTLED = "throttled"
    BELOW_THRESHOLD = "below_threshold"


def throttle_key(alert: AlertMessage) -> ThrottleKey:
    return alert.kind, alert.subject_key


@dataclass(frozen=True)
class ThrottleHistory:
    """What earlier polls did: when each key was last emailed, which alert ids were handled."""

    last_sent: Mapping[ThrottleKey, datetime]
    handled_alert_ids: frozenset[str]


@dataclass(frozen=True)
class Delivery:
    """One email: a single alert, or a digest of several."""

    alerts: tuple[AlertMessage, ...]
    is_digest: bool

    @property
    def outcome(self) -> Outcome:
        return Outcome.DIGESTED if self.is_digest else Outcome.SENT


@dataclass(frozen=True)
class Suppressed:
    alert: AlertMessage
    outcome: Outcome


@dataclass(frozen=True)
class NotificationPlan:
    deliveries: tuple[Delivery, ...]
    suppressed: tuple[Suppressed, ...]  # throttled or below threshold: recorded, not emailed
    duplicates: tuple[AlertMessage, ...]  # handled before or repeated: nothing to do

    @property
    def emailed_alerts(self) -> int:
        return sum(len(d.alerts) for d in self.deliveries)


def _chronological(alerts: Iterable[AlertMessage]) -> list[AlertMessage]:
    return sorted(alerts, key=lambda a: (a.event_time, a.alert_id))


def plan_notifications(
    alerts: Sequence[AlertMessage], history: ThrottleHistory, now: datetime, settings: Settings
) -> NotificationPlan:
    """The emails to send for one poll's ``alerts`` (in arrival order) at ``now``."""
    period = timedelta(minutes=settings.alerting.throttle_minutes)
    handled = set(history.handled_alert_ids)
    fresh, duplicates = [], []
    for alert in alerts:
        (duplicates if alert.alert_id in handled else fresh).append(alert)
        handled.add(alert.alert_id)

    suppressed: list[Suppressed] = []
    due: dict[ThrottleKey, AlertMessage] = {}
    for alert in _chronological(fresh):
        key = throttle_key(alert)
        last_sent = history.last_sent.get(key)
        if isinstance(alert, AnomalyAlert) and alert.detail.score < settings.thresholds.anomaly_alert_score:
            suppressed.append(Suppressed(alert, Outcome.BELOW_THRESHOLD))
        elif last_sent is not None and now - last_sent < period:
            suppressed.append(Suppressed(alert, Outcome.THROTTLED))
        else:
            if key in due:  # an earlier alert of the key in this poll: the later one is emailed
                suppressed.append(Suppressed(due[key], Outcome.THROTTLED))
            due[key] = alert

    emails = _chronological(due.values())
    if len(emails) > settings.alerting.digest_threshold:
        deliveries = (Delivery(tuple(emails), is_digest=True),)
    else:
        deliveries = tuple(Delivery((alert,), is_digest=False) for alert in emails)
    return NotificationPlan(deliveries, tuple(suppressed), tuple(duplicates))
