"""Dedupe, throttle and digest rules of the alert emails (pure: time and history passed in)."""

from datetime import UTC, datetime, timedelta

from globalmart.alerting.messages import AnomalyAlert, StockAlert
from globalmart.alerting.policy import NotificationPlan, Outcome, ThrottleHistory, plan_notifications, throttle_key
from globalmart.settings import AlertingSettings, Settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOTHING_SENT = ThrottleHistory({}, frozenset())


def settings(**alerting) -> Settings:
    return Settings().model_copy(update={"alerting": AlertingSettings(**alerting)})


def stock(product: str, serial: int, kind: str = "stock.low", minutes_ago: float = 1) -> StockAlert:
    state = kind.split(".")[1]
    return StockAlert(
        alert_id=f"stock:{product}:{state}:c0ffee:{serial}", app="inventory_tracker", kind=kind,
        severity="critical" if state == "critical" else "warning", subject=f"{state} stock: {product}",
        detail={"product_id": product, "stock": 9 - serial % 9, "state_before": "ok", "state": state,
                "threshold": 5 if state == "critical" else 10},
        event_time=NOW - timedelta(minutes=minutes_ago), created_at=NOW,
    )


def anomaly(user: str, score: float, serial: int = 1) -> AnomalyAlert:
    return AnomalyAlert(
        alert_id=f"anomaly:high_value:T{serial}", app="anomaly_detector", kind="anomaly.high_value",
        severity="warning", subject="suspicious", event_time=NOW - timedelta(minutes=1), created_at=NOW,
        detail={"anomaly_id": f"high_value:T{serial}", "kind": "high_value", "user_id": user, "country": "USA",
                "transaction_ids": [f"T{serial}"], "first_event_time": NOW, "last_event_time": NOW,
                "amount": 9000.0, "observed": 9000.0, "threshold": 5000.0, "score": score, "description": "big"},
    )


def burst(products: int = 10, per_product: int = 10, start: int = 0) -> list[StockAlert]:
    """``products × per_product`` low-stock alerts within a minute, products interleaved."""
    return [stock(f"P{p:02d}", start + n * products + p, minutes_ago=1 - n / 60)
            for n in range(per_product) for p in range(products)]


def history_after(plan: NotificationPlan, now: datetime, before: ThrottleHistory = NOTHING_SENT) -> ThrottleHistory:
    """What the store holds once ``plan`` was carried out."""
    handled = {a.alert_id for d in plan.deliveries for a in d.alerts}
    handled |= {s.alert.alert_id for s in plan.suppressed}
    sent = {throttle_key(a): now for d in plan.deliveries for a in d.alerts}
    return ThrottleHistory({**before.last_sent, **sent}, before.handled_alert_ids | handled)


def test_burst_of_100_alerts_for_10_products_is_one_digest_of_10():
    plan = plan_notifications(burst(), NOTHING_SENT, NOW, settings(digest_threshold=5))
    (digest,) = plan.deliveries
    assert digest.is_digest and digest.outcome is Outcome.DIGESTED
    assert sorted(a.detail.product_id for a in digest.alerts) == [f"P{p:02d}" for p in range(10)]
    assert [s.outcome for s in plan.suppressed] == [Outcome.THROTTLED] * 90
    assert plan.duplicates == ()
    # each product's email is about its latest alert: its facts are the current ones
    assert {a.alert_id for a in digest.alerts} == {a.alert_id for a in burst()[-10:]}


def test_burst_with_a_digest_threshold_of_10_is_10_single_emails():
    plan = plan_notifications(burst(), NOTHING_SENT, NOW, settings(digest_threshold=10))
    assert [(len(d.alerts), d.is_digest) for d in plan.deliveries] == [(1, False)] * 10
    assert len(plan.suppressed) == 90


def test_replaying_the_same_alert_ids_sends_nothing():
    alerts = burst()
    first = plan_notifications(alerts, NOTHING_SENT, NOW, settings())
    # even after the throttle period, a handled alert id is never emailed again
    replay = plan_notifications(alerts, history_after(first, NOW), NOW + timedelta(days=1), settings())
    assert replay.deliveries == () and replay.suppressed == ()
    assert len(replay.duplicates) == 100


def test_an_alert_repeated_within_a_poll_is_a_duplicate():
    alert = stock("P1", 1)
    plan = plan_notifications([alert, alert, alert], NOTHING_SENT, NOW, settings())
    assert [d.alerts for d in plan.deliveries] == [(alert,)]
    assert plan.duplicates == (alert, alert)


def test_new_alerts_within_the_period_are_throttled_and_after_it_sent_again():
    s = settings(throttle_minutes=60, digest_threshold=5)
    history = history_after(plan_notifications(burst(), NOTHING_SENT, NOW, s), NOW)
    later = burst(start=1000)  # new alert ids for the same ten products
    within = plan_notifications(later, history, NOW + timedelta(minutes=59), s)
    assert within.deliveries == ()
    assert [x.outcome for x in within.suppressed] == [Outcome.THROTTLED] * 100
    after = plan_notifications(later, history, NOW + timedelta(minutes=60), s)
    assert [len(d.alerts) for d in after.deliveries] == [10]


def test_throttle_is_per_kind_and_subject_key():
    history = ThrottleHistory({("stock.low", "P1"): NOW - timedelta(minutes=5)}, frozenset())
    alerts = [stock("P1", 1), stock("P1", 2, kind="stock.critical"), stock("P2", 3)]
    plan = plan_notifications(alerts, history, NOW, settings())
    assert sorted(throttle_key(d.alerts[0]) for d in plan.deliveries) == [("stock.critical", "P1"), ("stock.low", "P2")]
    assert [(s.alert.alert_id, s.outcome) for s in plan.suppressed] == [("stock:P1:low:c0ffee:1", Outcome.THROTTLED)]


def test_a_zero_throttle_period_still_sends_one_email_per_key_and_poll():
    history = ThrottleHistory({("stock.low", "P1"): NOW}, frozenset())
    plan = plan_notifications([stock("P1", 1), stock("P1", 2)], history, NOW, settings(throttle_minutes=0))
    assert [d.alerts[0].alert_id for d in plan.deliveries] == ["stock:P1:low:c0ffee:2"]


def test_anomalies_below_the_alert_score_are_not_emailed():
    s = settings()
    s = s.model_copy(update={"thresholds": s.thresholds.model_copy(update={"anomaly_alert_score": 0.9})})
    plan = plan_notifications([anomaly("U1", 0.85, 1), anomaly("U2", 0.9, 2)], NOTHING_SENT, NOW, s)
    assert [d.alerts[0].detail.user_id for d in plan.deliveries] == ["U2"]
    assert [(x.alert.detail.user_id, x.outcome) for x in plan.suppressed] == [("U1", Outcome.BELOW_THRESHOLD)]


def test_exactly_the_digest_threshold_is_still_single_emails():
    alerts = [stock(f"P{p}", p) for p in range(5)]
    assert [d.is_digest for d in plan_notifications(alerts, NOTHING_SENT, NOW, settings(digest_threshold=5)).deliveries] == [False] * 5
    (digest,) = plan_notifications(alerts + [stock("P9", 9)], NOTHING_SENT, NOW, settings(digest_threshold=5)).deliveries
    assert digest.is_digest and len(digest.alerts) == 6


def test_the_plan_is_deterministic_whatever_the_arrival_order():
    alerts = burst()
    forward = plan_notifications(alerts, NOTHING_SENT, NOW, settings(digest_threshold=20))
    backward = plan_notifications(alerts[::-1], NOTHING_SENT, NOW, settings(digest_threshold=20))
    assert forward.deliveries == backward.deliveries
    assert [d.alerts[0].event_time for d in forward.deliveries] == sorted(d.alerts[0].event_time for d in forward.deliveries)
