"""Each service of the local platform is a real server that does its job."""

import json
import smtplib
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage

import httpx
import psycopg2
import pytest
from confluent_kafka import Consumer, Producer
from pymongo import MongoClient

from globalmart.kafka_admin import admin_client
from globalmart.platform import launcher
from globalmart.platform.services import services


def test_topics_exist_with_partitions_and_retention_from_settings(platform):
    admin = admin_client(platform)
    metadata = admin.list_topics(timeout=10).topics
    for spec in platform.kafka.topics():
        assert spec.name in metadata
        assert len(metadata[spec.name].partitions) == spec.partitions
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, platform.kafka.alerts.name)
    config = admin.describe_configs([resource])[resource].result()
    assert config["retention.ms"].value == str(platform.kafka.alerts.retention_ms)


def test_kafka_round_trip_keeps_every_message(platform):
    topic = platform.kafka.system_metrics.name
    marker = uuid.uuid4().hex
    producer = Producer({"bootstrap.servers": platform.kafka.bootstrap_servers, "enable.idempotence": True})
    for i in range(50):
        producer.produce(topic, key=marker, value=json.dumps({"marker": marker, "i": i}))
    assert producer.flush(15) == 0
    consumer = Consumer(
        {"bootstrap.servers": platform.kafka.bootstrap_servers, "group.id": f"test-{marker}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    seen, deadline = [], time.monotonic() + 30
    while len(seen) < 50 and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and not message.error() and message.key() == marker.encode():
            seen.append(json.loads(message.value())["i"])
    consumer.close()
    assert sorted(seen) == list(range(50))


def test_postgres_accepts_the_app_role_with_its_password_only(platform):
    pg = platform.postgres
    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, inet_server_addr()::text")
        assert cur.fetchone() == (pg.user, "127.0.0.1/32")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password="wrong", dbname=pg.database)


def test_mongo_wire_protocol_server_stores_and_queries_documents(platform):
    client = MongoClient(platform.mongo.uri, serverSelectionTimeoutMS=5000)
    collection = client[platform.mongo.database][f"it_{uuid.uuid4().hex[:8]}"]
    try:
        collection.insert_many([{"sku": f"P{i}", "stock": i} for i in range(10)])
        collection.create_index("sku", unique=True)
        assert collection.count_documents({"stock": {"$lt": 5}}) == 5
        totals = list(collection.aggregate([{"$group": {"_id": None, "total": {"$sum": "$stock"}}}]))
        assert totals[0]["total"] == 45
    finally:
        collection.drop()
        client.close()


def test_smtp_server_delivers_to_the_inbox_api(platform):
    subject = f"integration {uuid.uuid4().hex}"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = platform.smtp.sender, "ops@globalmart.local", subject
    message.set_content("plain part")
    message.add_alternative("<p>html part</p>", subtype="html")
    with smtplib.SMTP(platform.smtp.host, platform.smtp.port, timeout=10) as smtp:
        smtp.send_message(message)
    inbox = httpx.get(f"{platform.smtp.inbox_url}/email", timeout=10).json()
    delivered = [m for m in inbox if m["subject"] == subject]
    assert len(delivered) == 1
    assert "html part" in delivered[0]["html"] and "plain part" in delivered[0]["text"]


def test_airflow_ui_login_and_project_dags(platform):
    af = platform.airflow
    token = httpx.post(
        f"{af.url}/auth/token",
        json={"username": af.admin_user, "password": af.admin_password.get_secret_value()},
        timeout=10,
    )
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert httpx.post(f"{af.url}/auth/token", json={"username": af.admin_user, "password": "nope"}, timeout=10).status_code == 401

    health = httpx.get(f"{af.url}/api/v2/monitor/health", timeout=10).json()
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"

    deadline = time.monotonic() + 90  # the DAG processor parses the folder on its own schedule
    while True:
        dags = httpx.get(f"{af.url}/api/v2/dags", headers=headers, timeout=10).json()["dags"]
        if "platform_smoke" in {d["dag_id"] for d in dags} or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert "platform_smoke" in {d["dag_id"] for d in dags}
    errors = httpx.get(f"{af.url}/api/v2/importErrors", headers=headers, timeout=10).json()
    assert errors["total_entries"] == 0, errors


def test_second_start_is_a_no_op(platform):
    pids = {n: i["pid"] for n, i in launcher.sv.Supervisor(platform).processes().items()}
    result = subprocess.run([sys.executable, "-m", "globalmart.cli", "platform", "up"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "platform is up" in result.stdout
    assert {n: i["pid"] for n, i in launcher.sv.Supervisor(platform).processes().items()} == pids


def test_status_reports_every_service_running(platform, capsys):
    assert launcher.status(platform) is True
    out = capsys.readouterr().out
    assert out.count("RUNNING") == len(services(platform))
