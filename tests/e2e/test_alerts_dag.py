"""The alerts DAG through the running Airflow: Kafka ``alerts`` topic → AssetWatcher → task → SMTP inbox.

Each test uses products of its own (a unique marker in every product id) and reads only the
emails that name them, so other tests' emails in the shared inbox do not matter.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg2
import pytest
from confluent_kafka import Producer

from globalmart.platform.supervisor import Supervisor

EMAIL_WAIT_SECONDS = 180  # a wake-up, a scheduler loop and a task start; the cron safety net is 10 minutes
QUIET_SECONDS = 20  # after the expected emails, how long no further one may arrive


def stock_alert(product_id: str, serial: int, state: str = "low", stock: int = 8, at: datetime | None = None) -> dict:
    at = at or datetime.now(UTC)
    moment = at.isoformat().replace("+00:00", "Z")
    return {
        "alert_id": f"stock:{product_id}:{state}:{serial}", "app": "inventory_tracker", "kind": f"stock.{state}",
        "severity": "critical" if state == "critical" else "warning", "subject": f"{state} stock: {product_id}",
        "event_time": moment, "created_at": moment,
        "detail": {"product_id": product_id, "stock": stock, "state_before": "ok", "state": state,
                   "threshold": 5 if state == "critical" else 10},
    }


def publish(settings, alerts: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for alert in alerts:
        producer.produce(settings.kafka.alerts.name, key=alert["alert_id"], value=json.dumps(alert))
    assert producer.flush(10) == 0


def emails_naming(settings, marker: str) -> list[dict]:
    inbox = httpx.get(f"{settings.smtp.inbox_url}/email", timeout=10).json()
    return [m for m in inbox if marker in m["subject"] or marker in (m.get("html") or "")]


def wait_for_emails(settings, marker: str, expected: int, seconds: float = EMAIL_WAIT_SECONDS) -> list[dict]:
    """The emails naming ``marker`` once there are ``expected`` (then QUIET_SECONDS more, to catch extras)."""
    deadline = time.monotonic() + seconds
    while len(found := emails_naming(settings, marker)) < expected and time.monotonic() < deadline:
        time.sleep(1)
    assert len(found) >= expected, f"{len(found)} of {expected} emails naming {marker} within {seconds} s"
    time.sleep(QUIET_SECONDS)
    return emails_naming(settings, marker)


def outcomes(settings, marker: str) -> dict[str, int]:
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT outcome, count(*) FROM alert_notifications WHERE subject_key LIKE %s GROUP BY outcome",
                    (f"%{marker}%",))
        return dict(cur.fetchall())


@pytest.fixture(scope="module")
def alerts_dag(platform):
    """The alerts DAG, parsed by the running Airflow and not paused."""
    af = platform.airflow
    token = httpx.post(f"{af.url}/auth/token", json={"username": af.admin_user,
                       "password": af.admin_password.get_secret_value()}, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 120
    while (response := httpx.get(f"{af.url}/api/v2/dags/alerts", headers=headers, timeout=10)).status_code == 404:
        assert time.monotonic() < deadline, "the DAG processor has not registered the alerts DAG"
        time.sleep(2)
    if response.json()["is_paused"]:
        httpx.patch(f"{af.url}/api/v2/dags/alerts", json={"is_paused": False}, headers=headers, timeout=10).raise_for_status()
    return platform


def test_one_alert_event_gives_exactly_one_email(alerts_dag):
    settings = alerts_dag
    product = f"P-e2e-one-{uuid.uuid4().hex[:8]}"
    publish(settings, [stock_alert(product, 1, state="critical", stock=3)])

    (email,) = wait_for_emails(settings, product, expected=1)
    assert email["subject"] == f"[GlobalMart] Critical stock: {product} has 3 left (below 5)"
    assert email["headers"]["content-type"].startswith("multipart/alternative")
    for fact in (product, "3 units", "below 5", "ok → critical", "reorder now"):
        assert fact in email["html"] and fact in email["text"], fact
    assert [to["address"] for to in email["to"]] == settings.alerting.recipients
    assert outcomes(settings, product) == {"sent": 1}


def test_a_burst_of_100_alerts_for_10_products_is_throttled_to_one_per_product(alerts_dag):
    settings = alerts_dag
    marker = f"P-e2e-burst-{uuid.uuid4().hex[:8]}"
    products = [f"{marker}-{n:02d}" for n in range(10)]
    start = datetime.now(UTC) - timedelta(minutes=5)
    # ten stock movements per product, interleaved, a few seconds apart in event time
    burst = [stock_alert(product, serial, stock=10 - serial % 10, at=start + timedelta(seconds=serial * 3))
             for serial in range(10) for product in products]
    publish(settings, burst)

    deadline = time.monotonic() + EMAIL_WAIT_SECONDS
    while sum(outcomes(settings, marker).values()) < 100 and time.monotonic() < deadline:
        time.sleep(1)
    decided = outcomes(settings, marker)
    assert decided.get("throttled") == 90, decided
    assert decided.get("sent", 0) + decided.get("digested", 0) == 10, decided

    emails = wait_for_emails(settings, marker, expected=1)
    assert 1 <= len(emails) <= 10
    for product in products:  # each product in exactly one email: its own, or one line of a digest
        assert sum(product in (m["html"] or "") for m in emails) == 1, product
    if decided.get("digested"):
        assert any(m["subject"].startswith("[GlobalMart] Alert digest:") for m in emails)


def test_a_triggerer_restart_between_alert_and_email_loses_nothing_and_sends_nothing_twice(alerts_dag):
    settings = alerts_dag
    supervisor = Supervisor(settings)
    marker = f"P-e2e-restart-{uuid.uuid4().hex[:8]}"
    while_down, during_restart = f"{marker}-down", f"{marker}-bounce"
    try:
        # 1. the alert arrives while the triggerer is down: its watcher must find it when it is back
        supervisor.stop("airflow-triggerer")
        publish(settings, [stock_alert(while_down, 1)])
        time.sleep(3)
        supervisor.start("airflow-triggerer")
        (email,) = wait_for_emails(settings, while_down, expected=1)
        assert while_down in email["subject"]

        # 2. the triggerer is stopped right after the alert is published, before its email can be sent
        publish(settings, [stock_alert(during_restart, 1)])
        supervisor.stop("airflow-triggerer")
        supervisor.start("airflow-triggerer")
        (email,) = wait_for_emails(settings, during_restart, expected=1)
        assert during_restart in email["subject"]
    finally:
        supervisor.start("airflow-triggerer")  # no-op when it runs
    assert outcomes(settings, marker) == {"sent": 2}
    assert len(emails_naming(settings, marker)) == 2
