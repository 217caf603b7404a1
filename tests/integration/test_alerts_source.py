"""The alerts DAG's task logic (globalmart.alerting.source.drain) on real Kafka, PostgreSQL and SMTP,
in a sandbox: its own alerts topic, database and consumer group, and a recipient of its own."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import psycopg2
import pytest
from confluent_kafka import Consumer, TopicPartition

from globalmart.alerting.delivery import SmtpConnectionMissing
from globalmart.alerting.source import STAGE, drain
from tests.kafka_helpers import produce_raw
from tests.mail_helpers import inbox_of, messages_to


def stock_alert(product_id: str, serial: int = 1) -> bytes:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({
        "alert_id": f"stock:{product_id}:low:{serial}", "app": "inventory_tracker", "kind": "stock.low",
        "severity": "warning", "subject": f"Low stock: {product_id}", "event_time": now, "created_at": now,
        "detail": {"product_id": product_id, "stock": 9, "state_before": "ok", "state": "low", "threshold": 10},
    }).encode()


@pytest.fixture
def alerts_env(stream_env):
    recipient = f"alerts-{uuid.uuid4().hex[:8]}@globalmart.local"
    alerting = stream_env.alerting.model_copy(update={
        "recipients": [recipient], "consumer_group": f"test-alerts-{uuid.uuid4().hex[:8]}"})
    return stream_env.model_copy(update={"alerting": alerting})


def delivered_to(settings, recipient: str, expected: int, timeout: float = 30) -> list[dict]:
    """The recipient's emails once ``expected`` have landed (MailDev stores a message a moment
    after the SMTP exchange ends), and a second later still, so that one too many would show."""
    inbox_of(settings, recipient, expected, timeout)
    time.sleep(1)
    return messages_to(settings, recipient)


def committed_offset(settings) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": settings.alerting.consumer_group})
    try:
        (tp,) = consumer.committed([TopicPartition(settings.kafka.alerts.name, 0)], timeout=10)
        return tp.offset
    finally:
        consumer.close()


def test_valid_alerts_are_emailed_malformed_ones_dead_lettered_then_committed(alerts_env):
    settings = alerts_env
    (recipient,) = settings.alerting.recipients
    product = f"P-{uuid.uuid4().hex[:8]}"
    produce_raw(settings, "alerts", [
        (b"bad-json", b"{not json"),
        (b"good", stock_alert(product)),
        (b"bad-kind", json.dumps({"alert_id": "x", "kind": "weather.storm"}).encode()),
    ])

    report = drain(settings)

    assert (report.messages, report.emails, report.dead_lettered, report.committed) == (3, 1, 2, {0: 3})
    assert committed_offset(settings) == 3
    (email,) = delivered_to(settings, recipient, 1)
    assert email["subject"] == f"[GlobalMart] Low stock: {product} has 9 left (below 10)"
    with psycopg2.connect(settings.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT kafka_offset, source_topic, stage, reason, payload FROM dead_letters ORDER BY kafka_offset")
        dead = cur.fetchall()
    assert [(offset, topic, stage) for offset, topic, stage, _, _ in dead] == [
        (0, settings.kafka.alerts.name, STAGE), (2, settings.kafka.alerts.name, STAGE)]
    assert dead[0][3].startswith("message: Invalid JSON") and dead[0][4] == "{not json"
    assert dead[1][3] == "message: kind must be a string starting with one of stock., anomaly., cart_abandonment., data_quality."

    again = drain(settings)  # nothing new: nothing read, nothing sent
    assert (again.messages, again.emails) == (0, 0)
    assert len(delivered_to(settings, recipient, 1)) == 1


def test_without_an_smtp_connection_nothing_is_committed_and_the_next_run_sends_once(alerts_env):
    settings = alerts_env
    (recipient,) = settings.alerting.recipients
    broken = settings.model_copy(update={"alerting": settings.alerting.model_copy(update={"smtp_conn_id": "smtp_absent"})})
    product = f"P-{uuid.uuid4().hex[:8]}"
    produce_raw(settings, "alerts", [(b"a", stock_alert(product))])

    with pytest.raises(SmtpConnectionMissing, match="'smtp_absent' is not defined in Airflow"):
        drain(broken)
    assert committed_offset(settings) < 0  # nothing committed: the alert is read again

    assert drain(settings).emails == 1
    assert drain(settings).messages == 0
    assert len(delivered_to(settings, recipient, 1)) == 1
    assert committed_offset(settings) == 1
