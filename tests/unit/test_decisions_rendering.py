"""What people read about a decision: the form, the alert email's link, the escalation email."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

from globalmart.alerting.policy import Delivery
from globalmart.alerting.rendering import render_delivery
from globalmart.decisions.policy import DECIDE_TASK, RESTOCK
from globalmart.decisions.rendering import decision_url, escalation_email, form_body, form_subject
from globalmart.decisions.service import DecisionLink
from globalmart.decisions.policy import Opening
from globalmart.decisions.store import COLUMNS, Decision
from globalmart.settings import Settings
from tests.unit.test_decisions_policy import anomaly_alert, stock_alert

SETTINGS = Settings()
OPENED = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def decision(kind="restock", **facts) -> Decision:
    base = dict.fromkeys(COLUMNS)
    base.update(decision_id="restock__P1__abc" if kind == RESTOCK else "fraud__A1__abc", kind=kind,
                subject_key="P1" if kind == RESTOCK else "A1", dag_id=f"{kind}_dag", alert_id="a1",
                joined_alert_ids=[], status="open", opened_at=OPENED, timed_out=False,
                suggested_quantity=152 if kind == RESTOCK else None)
    base["facts"] = facts or (
        {"product_id": "P1", "product_name": "Blue *Mug*", "category": "Kitchen", "stock": 2, "threshold": 5,
         "alert_time": OPENED.isoformat()} if kind == RESTOCK else
        {"anomaly_id": "A1", "rule": "high_value", "user_id": "U1", "country": "USA", "amount": 9000.0,
         "score": 0.95, "description": "one purchase of $9,000", "transaction_ids": [f"T{n}" for n in range(7)],
         "first_event_time": OPENED.isoformat(), "last_event_time": OPENED.isoformat()})
    return Decision(**base)


def test_restock_form_shows_the_facts_and_the_suggestion():
    restock = decision()
    assert form_subject(restock) == "Restock Blue *Mug* (P1)? 2 left (critical below 5)"
    body = form_body(restock, SETTINGS, units_sold=48)
    for fact in ("Blue \\*Mug\\*", "Kitchen", "2 units", "48 units", "152 units", "Reorder", "Ignore",
                 SETTINGS.decisions.escalation_recipients[0], "`restock__P1__abc`"):
        assert fact in body, fact


def test_fraud_form_shows_the_anomaly():
    review = decision(kind="fraud")
    assert form_subject(review) == "Fraud review: high-value transaction by U1, $9,000.00 (score 0.95)"
    body = form_body(review, SETTINGS)
    for fact in ("U1", "$9,000\\.00", "0\\.95", "7: T0, T1, T2, T3, T4 and 2 more", "Hold customer"):
        assert fact in body, fact


def test_the_link_opens_the_decision_on_the_required_actions_page():
    url = urlparse(decision_url(SETTINGS, "restock_decision", "restock__P1__abc"))
    assert url.path == f"/dags/restock_decision/runs/restock__P1__abc/tasks/{DECIDE_TASK}/required_actions"
    assert parse_qs(url.query) == {"map_index": ["-1"]}
    assert f"{url.scheme}://{url.netloc}" == SETTINGS.airflow.url


def test_alert_email_links_to_its_decision():
    alert = stock_alert("P1", 1)
    link = DecisionLink("restock__P1__abc", decision_url(SETTINGS, "restock_decision", "restock__P1__abc"),
                        "Decide: reorder or ignore", Opening.OPENED)
    email = render_delivery(Delivery((alert,), is_digest=False), SETTINGS, {alert.alert_id: link})
    assert f'href="{link.url}"' in email.html and "Decide: reorder or ignore in Airflow" in email.html
    assert f"Decide: reorder or ignore in Airflow: {link.url}" in email.text
    plain = render_delivery(Delivery((alert,), is_digest=False), SETTINGS, {})
    assert "required_actions" not in plain.html and "required_actions" not in plain.text


def test_digest_links_to_the_required_actions_page_when_it_opened_decisions():
    alerts = tuple(stock_alert(f"P{n}", n) for n in range(3)) + (anomaly_alert("A1", 0.95),)
    link = DecisionLink("x", "http://x", "t", Opening.OPENED)
    digest = render_delivery(Delivery(alerts, is_digest=True), SETTINGS, {alerts[0].alert_id: link})
    assert "/required_actions?response_received=false" in digest.html
    assert "/required_actions?response_received=false" in digest.text
    assert "required_actions" not in render_delivery(Delivery(alerts, is_digest=True), SETTINGS).html


def test_escalation_email_says_what_was_decided_by_default():
    email = escalation_email(decision(), "ignore", SETTINGS)
    assert email.subject == ('[GlobalMart] Escalation: no answer to "Restock Blue *Mug* (P1)? 2 left (critical below 5)", '
                             "closed as Ignore")
    assert "No restock was sent" in email.text and "No restock was sent" in email.html
    assert decision_url(SETTINGS, "restock_dag", "restock__P1__abc") in email.text
    fraud = escalation_email(decision(kind="fraud"), "hold_customer", SETTINGS)
    assert fraud.subject.endswith("closed as Hold customer") and "No restock" not in fraud.text
