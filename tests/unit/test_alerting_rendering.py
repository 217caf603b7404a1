"""Alert emails carry the facts a person acts on, in the HTML and in the plain-text part."""

from datetime import UTC, datetime, timedelta

import pytest

from globalmart.alerting.messages import AbandonmentSpikeAlert, AnomalyAlert, StockAlert
from globalmart.alerting.policy import Delivery
from globalmart.alerting.rendering import render_alert, render_delivery, render_digest
from globalmart.settings import AlertingSettings, Settings

AT = datetime(2026, 11, 20, 14, 5, 9, tzinfo=UTC)
SETTINGS = Settings().model_copy(update={"alerting": AlertingSettings(recipients=["inventory@globalmart.local"])})


def stock(product="P004217", stock_left=3, kind="stock.critical", serial=1) -> StockAlert:
    state = kind.split(".")[1]
    return StockAlert(
        alert_id=f"stock:{product}:{state}:c0ffee:{serial}", app="inventory_tracker", kind=kind,
        severity="critical" if state == "critical" else "warning", subject="x", event_time=AT, created_at=AT,
        detail={"product_id": product, "stock": stock_left, "state_before": "low" if state == "critical" else "ok",
                "state": state, "threshold": 5 if state == "critical" else 10},
    ).with_catalog_facts("Trail Running Shoe", "Sports > Running")


def anomaly(user="U0031337", serial=1) -> AnomalyAlert:
    return AnomalyAlert(
        alert_id=f"anomaly:rapid_fire_count:T{serial}", app="anomaly_detector", kind="anomaly.rapid_fire_count",
        severity="critical", subject="x", event_time=AT, created_at=AT,
        detail={"anomaly_id": f"rapid_fire_count:T{serial}", "kind": "rapid_fire_count", "user_id": user,
                "country": "Germany", "transaction_ids": [f"T{i}" for i in range(7)],
                "first_event_time": AT - timedelta(seconds=42), "last_event_time": AT, "amount": 2480.5,
                "observed": 7.0, "threshold": 5.0, "score": 0.9617,
                "description": f"7 transactions by {user} within 42 s (5 or more in a minute)"},
    )


def spike() -> AbandonmentSpikeAlert:
    hour = AT.replace(minute=0, second=0)
    return AbandonmentSpikeAlert(
        alert_id=f"abandonment_spike:{hour.isoformat()}", app="sessions", kind="cart_abandonment.spike",
        severity="warning", subject="x", event_time=hour, created_at=AT,
        detail={"hour": hour, "abandoned_carts_so_far": 34, "abandoned_value_so_far": 5120.75, "threshold": 20},
    )


@pytest.mark.parametrize(("alert", "subject", "facts"), [
    (stock(), "[GlobalMart] Critical stock: Trail Running Shoe (P004217) has 3 left (below 5)",
     ["Trail Running Shoe (P004217)", "Sports &gt; Running", "3 units", "below 5", "low → critical",
      "2026-11-20 14:05:09 UTC"]),
    (stock(stock_left=8, kind="stock.low"), "[GlobalMart] Low stock: Trail Running Shoe (P004217) has 8 left (below 10)",
     ["Trail Running Shoe (P004217)", "8 units", "below 10", "ok → low", "plan a restock"]),
    (anomaly(), "[GlobalMart] Suspicious activity: rapid-fire purchases by U0031337, $2,480.50 (score 0.96)",
     ["U0031337", "Germany", "$2,480.50", "7: T0, T1, T2, T3, T4 and 2 more", "0.96 (alerts from 0.80)",
      "7 transactions by U0031337 within 42 s", "2026-11-20 14:04:27 UTC to 2026-11-20 14:05:09 UTC"]),
    (spike(), "[GlobalMart] Cart abandonment spike: 34 carts abandoned 2026-11-20 14:00–15:00 UTC (threshold 20)",
     ["2026-11-20 14:00–15:00 UTC", "34 so far", "$5,120.75", "more than 20 an hour"]),
])
def test_each_kind_has_its_subject_and_facts_in_both_parts(alert, subject, facts):
    email = render_alert(alert, SETTINGS)
    assert email.subject == subject
    for fact in facts:
        assert fact in email.html, fact
        assert fact.replace("&gt;", ">") in email.text, fact
    assert email.html.startswith("<!DOCTYPE html>") and "<" not in email.text
    assert alert.alert_id in email.html and alert.alert_id in email.text
    assert "inventory@globalmart.local" in email.text


def test_text_from_messages_is_escaped_in_html_and_subjects_stay_one_line():
    hostile = anomaly(user="U1<script>alert(1)</script>\nBcc: all@example.com")
    email = render_alert(hostile, SETTINGS)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html
    assert "\n" not in email.subject


def test_a_stock_alert_of_a_product_outside_the_catalog_says_so():
    bare = stock().model_copy(update={"detail": stock().detail.model_copy(update={"product_name": None, "category": None})})
    email = render_alert(bare, SETTINGS)
    assert email.subject.startswith("[GlobalMart] Critical stock: P004217 has 3 left")
    assert "not in the catalog" in email.text


def test_digest_groups_alerts_by_kind_most_severe_first():
    alerts = [stock(f"P{i:06d}", 8, "stock.low", i) for i in range(4)] + [spike(), stock(), anomaly()]
    email = render_digest(alerts, SETTINGS)
    assert email.subject == (
        "[GlobalMart] Alert digest: 7 alerts (rapid-fire purchases 1, critical stock 1, cart abandonment spike 1, …)")
    headings = ["Rapid-fire purchases (1)", "Critical stock (1)", "Cart abandonment spike (1)", "Low stock (4)"]
    for part, shown in ((email.html, headings), (email.text, [h.upper() for h in headings])):
        positions = [part.find(heading) for heading in shown]
        assert -1 not in positions and positions == sorted(positions)
    for product in ("P000000", "P000003", "P004217"):
        assert product in email.html and product in email.text
    assert email.html.count("<table") == 1 + 4  # the layout, and one table per kind
    assert "U0031337" in email.text and "34 so far" in email.text


def test_a_long_digest_group_ends_with_how_many_more():
    settings = SETTINGS.model_copy(update={"alerting": AlertingSettings(digest_rows_per_kind=3)})
    email = render_digest([stock(f"P{i:06d}", 8, "stock.low", i) for i in range(10)], settings)
    assert "P000002" in email.html and "P000003" not in email.html
    assert "and 7 more low stock alerts" in email.html and "and 7 more low stock alerts" in email.text


def test_a_delivery_renders_as_single_email_or_digest():
    assert render_delivery(Delivery((spike(),), is_digest=False), SETTINGS).subject.startswith(
        "[GlobalMart] Cart abandonment spike")
    assert render_delivery(Delivery((spike(), stock()), is_digest=True), SETTINGS).subject.startswith(
        "[GlobalMart] Alert digest: 2 alerts")
