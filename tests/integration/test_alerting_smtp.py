"""Alert emails through the real SMTP server (inbox REST API), throttle state in real PostgreSQL."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from globalmart import db
from globalmart.alerting.delivery import send
from globalmart.alerting.messages import StockAlert
from globalmart.alerting.notifier import notify
from globalmart.alerting.policy import Delivery, Outcome, Suppressed, ThrottleHistory
from globalmart.alerting.rendering import render_alert
from globalmart.alerting.store import NotificationStore
from globalmart.platform.launcher import create_database, drop_database
from globalmart.settings import AlertingSettings
from tests.mail_helpers import inbox_of

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def alert_db(platform):
    """Settings whose PostgreSQL database (migrated, dropped afterwards) belongs to this module."""
    database = f"globalmart_alerting_{uuid.uuid4().hex[:8]}"
    private = platform.model_copy(update={"postgres": platform.postgres.model_copy(update={"database": database})})
    create_database(private, database)
    try:
        db.upgrade(private)
        yield private
    finally:
        drop_database(private, database)


def with_alerting(settings, **alerting):
    return settings.model_copy(update={"alerting": AlertingSettings(**alerting)})


def stock(product: str, serial: int, stock_left: int = 7, minutes_ago: float = 1) -> StockAlert:
    return StockAlert(
        alert_id=f"stock:{product}:low:c0ffee:{serial}", app="inventory_tracker", kind="stock.low", severity="warning",
        subject=f"Low stock: {product}", event_time=NOW - timedelta(minutes=minutes_ago), created_at=NOW,
        detail={"product_id": product, "stock": stock_left, "state_before": "ok", "state": "low", "threshold": 10},
    )


def test_an_alert_email_arrives_with_subject_html_and_text_parts(platform):
    recipient = f"inventory-{uuid.uuid4().hex[:8]}@globalmart.local"
    settings = with_alerting(platform, recipients=[recipient])
    alert = stock(f"P-{uuid.uuid4().hex[:8]}", 1).with_catalog_facts("Trail Running Shoe", "Sports > Running")
    email = render_alert(alert, settings)
    send(email, settings)
    (delivered,) = inbox_of(settings, recipient, expected=1)
    assert delivered["subject"] == email.subject
    assert delivered["headers"]["content-type"].startswith("multipart/alternative")
    assert delivered["subject"].startswith(f"[GlobalMart] Low stock: Trail Running Shoe ({alert.detail.product_id})")
    for fact in (alert.detail.product_id, "Trail Running Shoe", "7 units", "below 10", "ok → low"):
        assert fact in delivered["html"] and fact in delivered["text"], fact
    assert "Sports &gt; Running" in delivered["html"] and "Sports > Running" in delivered["text"]
    assert delivered["from"][0]["address"] == "alerts@globalmart.local"


def test_the_throttle_state_round_trips_through_postgres(alert_db):
    sent_at = NOW - timedelta(minutes=10)
    digested, throttled, fresh = stock("P-A", 1), stock("P-A", 2), stock("P-B", 3)
    with db.connect(alert_db) as conn:
        store = NotificationStore(conn)
        store.record_delivery(Delivery((digested, stock("P-C", 4)), is_digest=True), "the digest", sent_at)
        store.record_suppressed([Suppressed(throttled, Outcome.THROTTLED)], sent_at)
        # an older send recorded late does not move the throttle back
        store.record_delivery(Delivery((stock("P-A", 5),), is_digest=False), "late", sent_at - timedelta(hours=1))

    with db.connect(alert_db) as conn:  # a new connection: what a restarted notifier sees
        history = NotificationStore(conn).history([digested, throttled, fresh, stock("P-C", 6)])
        assert history.handled_alert_ids == {digested.alert_id, throttled.alert_id}
        assert history.last_sent == {("stock.low", "P-A"): sent_at, ("stock.low", "P-C"): sent_at}
        assert NotificationStore(conn).history([]) == ThrottleHistory({}, frozenset())
        with conn.cursor() as cur:
            cur.execute("SELECT outcome, email_subject FROM alert_notifications WHERE alert_id = %s", (digested.alert_id,))
            assert cur.fetchone() == ("digested", "the digest")
            cur.execute("SELECT last_alert_id FROM alert_throttle WHERE subject_key = 'P-A'")
            assert cur.fetchone() == (digested.alert_id,)


def test_stock_alerts_get_name_and_category_from_the_catalog(alert_db):
    with db.connect(alert_db) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO product_catalog (product_id, name, category, department, price, initial_stock, "
            "catalog_fingerprint) VALUES ('P-CAT', 'Espresso Maker', 'Home > Kitchen', 'Home', 89.99, 40, 'test')"
        )
        known, unknown = NotificationStore(conn).with_catalog_facts([stock("P-CAT", 1), stock("P-NONE", 2)])
    assert (known.detail.product_name, known.detail.category) == ("Espresso Maker", "Home > Kitchen")
    assert (unknown.detail.product_name, unknown.detail.category) == (None, None)


def test_a_burst_of_100_alerts_for_10_products_is_one_digest_and_a_replay_sends_nothing(alert_db):
    tag = uuid.uuid4().hex[:8]
    recipient = f"ops-{tag}@globalmart.local"
    settings = with_alerting(alert_db, recipients=[recipient], digest_threshold=5, throttle_minutes=60)
    products = [f"P-{tag}-{p}" for p in range(10)]
    alerts = [stock(products[p], n * 10 + p, stock_left=9 - n % 9, minutes_ago=1 - n / 60)
              for n in range(10) for p in range(10)]

    plan = notify(alerts, settings, NOW)
    assert [(len(d.alerts), d.is_digest) for d in plan.deliveries] == [(10, True)]
    (digest,) = inbox_of(settings, recipient, expected=1)
    assert digest["subject"] == "[GlobalMart] Alert digest: 10 alerts (low stock 10)"
    assert all(p in digest["html"] and p in digest["text"] for p in products)

    replay = notify(alerts, settings, NOW + timedelta(minutes=1))  # as after a restart before the commit
    later = notify([stock(p, 1000 + i) for i, p in enumerate(products)], settings, NOW + timedelta(minutes=30))
    assert replay.deliveries == () and len(replay.duplicates) == 100
    assert later.deliveries == () and {s.outcome for s in later.suppressed} == {Outcome.THROTTLED}

    after_period = notify([stock(p, 2000 + i) for i, p in enumerate(products[:3])], settings, NOW + timedelta(hours=1))
    assert [len(d.alerts) for d in after_period.deliveries] == [1, 1, 1]
    received = inbox_of(settings, recipient, expected=4)
    assert len(received) == 4
    assert sorted(m["subject"] for m in received if m["subject"] != digest["subject"]) == [
        f"[GlobalMart] Low stock: {p} has 7 left (below 10)" for p in sorted(products[:3])]
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT outcome, count(*) FROM alert_notifications WHERE subject_key LIKE %s GROUP BY 1 ORDER BY 1",
                    (f"P-{tag}-%",))
        assert cur.fetchall() == [("digested", 10), ("sent", 3), ("throttled", 100)]
