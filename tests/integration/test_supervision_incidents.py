"""The supervising trigger and the incident store on real PostgreSQL, Kafka and SMTP (MailDev).

Each test watches an app of its own name (rows in the live ``stream_status``), so the real
streaming apps and other tests are not disturbed.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import httpx
import pytest
from confluent_kafka import Producer

from globalmart import db
from globalmart.alerting.delivery import send
from globalmart.kafka_admin import delete_topics, ensure_topics
from globalmart.settings import TopicSpec
from globalmart.streaming.health import Limits

LIMITS = Limits(heartbeat_timeout_seconds=30, stall_seconds=20, max_lag_records=1000)


def execute(settings, statement, params=()):
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(statement, params)


@pytest.fixture
def app_name(platform):
    """A streaming app name of this test alone; its rows are removed afterwards."""
    name = f"test_supervised_{uuid.uuid4().hex[:8]}"
    yield name
    execute(platform, "DELETE FROM stream_status WHERE app = %s", (name,))
    execute(platform, "DELETE FROM stream_progress WHERE app = %s", (name,))
    execute(platform, "DELETE FROM stream_incidents WHERE subject = %s", (name,))


def heartbeat(settings, app, seconds_ago, status="running", batch_id=None):
    execute(settings, """
        INSERT INTO stream_status (query_name, app, run_id, checkpoint_id, status, last_batch_id, last_seen_at)
        VALUES (%s, %s, %s, %s, %s, %s, now() - %s * interval '1 second')
        ON CONFLICT (query_name) DO UPDATE SET status = EXCLUDED.status, last_seen_at = EXCLUDED.last_seen_at
    """, (f"{app}.main", app, str(uuid.uuid4()), str(uuid.uuid4()), status, batch_id, seconds_ago))


def trigger_for(app, since_seconds_ago=3600):
    from streaming_supervision.triggers import StreamingAppHealthTrigger

    return StreamingAppHealthTrigger(
        app=app, group=[app], limits={app: asdict(LIMITS)},
        supervising_since=(datetime.now(UTC) - timedelta(seconds=since_seconds_ago)).isoformat(), poll_interval=0.5,
    )


async def first_event(trigger, within: float):
    """The trigger's first event, or None when it stays quiet for ``within`` seconds."""
    runner = trigger.run()
    try:
        return (await asyncio.wait_for(runner.__anext__(), within)).payload
    except TimeoutError:
        return None
    finally:
        await runner.aclose()


def rebuilt(trigger):
    """The trigger as the triggerer recreates it after a restart: from its serialized form."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def emails_about(settings, marker: str, expected: int, wait_seconds: float = 15) -> list[dict]:
    deadline = time.monotonic() + wait_seconds
    while True:
        found = [m for m in httpx.get(f"{settings.smtp.inbox_url}/email", timeout=10).json() if marker in m["subject"]]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def act(settings, payload):
    """What the sensor does with an event: open the new incidents, close the cleared ones."""
    from streaming_supervision.hooks import StreamingHealthHook

    hook = StreamingHealthHook()
    findings = {(f["subject"], f["problem"]): f for f in payload["findings"]}
    opened = [hook.open_incident(s, p, f["reason"], f["figures"], "test", lambda e: send(e, settings))
              for (s, p), f in findings.items() if [s, p] not in payload["open"]]
    closed = [hook.close_incident(s, p, "test", lambda e: send(e, settings))
              for s, p in payload["open"] if (s, p) not in findings]
    return opened, closed


def test_an_old_heartbeat_fires_one_incident_email_and_its_recovery_once(platform, app_name):
    settings = platform
    heartbeat(settings, app_name, seconds_ago=300)
    trigger = trigger_for(app_name)

    payload = asyncio.run(first_event(trigger, within=20))
    assert payload is not None, "the trigger did not fire on a silent app"
    (finding,) = payload["findings"]
    assert (finding["subject"], finding["problem"]) == (app_name, "down")
    assert re.search(r"last heard from 30\d s ago \(timeout 30 s\)", finding["reason"])
    (incident_id,), () = act(settings, payload)
    assert incident_id is not None

    # a second check, and the trigger as a restarted triggerer rebuilds it, see the incident open: quiet
    assert asyncio.run(first_event(trigger, within=3)) is None
    assert asyncio.run(first_event(rebuilt(trigger), within=3)) is None
    # a sensor acting twice on the same event (e.g. a retried resume) opens nothing new
    assert act(settings, payload) == ([None], [])
    (email,) = emails_about(settings, f"incident #{incident_id}: {app_name} is down", expected=1)
    assert email["subject"] == f"[GlobalMart] Streaming incident #{incident_id}: {app_name} is down"

    heartbeat(settings, app_name, seconds_ago=0)
    recovered = asyncio.run(first_event(trigger, within=20))
    assert recovered["findings"] == [] and recovered["open"] == [[app_name, "down"]]
    assert act(settings, recovered) == ([], [incident_id])
    assert asyncio.run(first_event(trigger, within=3)) is None
    emails_about(settings, f"Resolved: streaming incident #{incident_id}", expected=1)
    time.sleep(2)  # anything sent twice would be in the inbox by now
    assert len(emails_about(settings, f"incident #{incident_id}:", expected=3, wait_seconds=0)) == 2


def test_input_waiting_without_progress_fires_a_stall(platform, app_name):
    settings = platform
    topic = f"{app_name}_input"
    ensure_topics(settings, [TopicSpec(name=topic, partitions=1, retention_ms=3600_000)])
    try:
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
        for n in range(5):
            producer.produce(topic, value=b"%d" % n)
        assert producer.flush(10) == 0
        heartbeat(settings, app_name, seconds_ago=1, status="idle", batch_id=3)
        execute(settings, """
            INSERT INTO stream_progress (query_name, run_id, batch_id, app, checkpoint_id, trigger_at, duration_ms,
                                         input_rows, end_offsets)
            VALUES (%s, %s, 3, %s, %s, now() - interval '60 seconds', 100, 2, %s)
        """, (f"{app_name}.main", str(uuid.uuid4()), app_name, str(uuid.uuid4()), f'[{{"{topic}": {{"0": 2}}}}]'))

        payload = asyncio.run(first_event(trigger_for(app_name), within=20))
        (finding,) = payload["findings"]
        assert (finding["subject"], finding["problem"]) == (app_name, "stalled")
        assert "3 records waiting" in finding["reason"]
    finally:
        delete_topics(settings, [topic])


def test_a_healthy_app_fires_nothing(platform, app_name):
    heartbeat(platform, app_name, seconds_ago=1, status="idle")
    assert asyncio.run(first_event(trigger_for(app_name), within=3)) is None


def test_a_clean_stop_is_told_apart_from_a_death(platform, app_name):
    from globalmart.streaming.incidents import stopped_cleanly

    started = datetime.now(UTC) - timedelta(seconds=30)
    with db.connect(platform) as conn:
        assert not stopped_cleanly(conn, [app_name], started)  # never reported: not a clean stop
        heartbeat(platform, app_name, seconds_ago=1, status="idle")  # a killed process leaves this
        assert not stopped_cleanly(conn, [app_name], started)
        heartbeat(platform, app_name, seconds_ago=1, status="stopped")  # what SIGTERM to the driver leaves
        assert stopped_cleanly(conn, [app_name], started)
        assert not stopped_cleanly(conn, [app_name], datetime.now(UTC))  # stopped before this try began
