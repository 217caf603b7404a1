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
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import httpx
import pytest
from confluent_kafka import Producer

from globalmart import db
from globalmart.kafka_admin import delete_topics, ensure_topics
from globalmart.settings import TopicSpec
from globalmart.streaming.health import Limits

LIMITS = Limits(heartbeat_timeout_seconds=30, stall_seconds=20, max_lag_records=1000, startup_grace_seconds=30)


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


def trigger_for(app, since_seconds_ago=3600, limits=LIMITS):
    from streaming_supervision.triggers import StreamingAppHealthTrigger

    return StreamingAppHealthTrigger(
        app=app, group=[app], limits={app: asdict(limits)},
        supervising_since=(datetime.now(UTC) - timedelta(seconds=since_seconds_ago)).isoformat(),
        supervisor="test.supervise", poll_interval=0.5,
    )


async def supervise_for(trigger, seconds: float, meanwhile=None) -> None:
    """Run the trigger as the triggerer does for ``seconds`` (it never fires: it acts), doing
    ``meanwhile`` (a blocking callable, run after half the time) in between."""
    runner = trigger.run()

    async def later():
        await asyncio.sleep(seconds / 2)
        await asyncio.to_thread(meanwhile)

    try:
        await asyncio.wait_for(asyncio.gather(runner.__anext__(), *([later()] if meanwhile else [])), seconds)
        raise AssertionError("the supervising trigger fired an event")
    except TimeoutError:
        pass
    finally:
        await runner.aclose()


def incidents(settings, subject) -> list[tuple]:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT incident_id, problem, reason, figures, closed_at IS NOT NULL FROM stream_incidents "
                    "WHERE subject = %s ORDER BY incident_id", (subject,))
        return cur.fetchall()


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


def test_an_old_heartbeat_opens_one_incident_email_and_its_recovery_once(platform, app_name):
    settings = platform
    heartbeat(settings, app_name, seconds_ago=300, status="idle")
    trigger = trigger_for(app_name)

    asyncio.run(supervise_for(trigger, 4))
    ((incident_id, problem, reason, figures, closed),) = incidents(settings, app_name)
    assert (problem, closed, figures) == ("down", False, {"affected": [app_name]})
    assert re.search(r"last heard from 30\d s ago \(timeout 30 s\)", reason)
    # the trigger as a restarted triggerer rebuilds it sees the incident open: nothing new
    asyncio.run(supervise_for(rebuilt(trigger), 2))
    assert len(incidents(settings, app_name)) == 1
    (email,) = emails_about(settings, f"incident #{incident_id}: {app_name} is down", expected=1)
    assert email["subject"] == f"[GlobalMart] Streaming incident #{incident_id}: {app_name} is down"

    heartbeat(settings, app_name, seconds_ago=0)
    asyncio.run(supervise_for(trigger, 2))
    assert incidents(settings, app_name)[0][4] is True
    emails_about(settings, f"Resolved: streaming incident #{incident_id}", expected=1)
    time.sleep(2)  # anything sent twice would be in the inbox by now
    assert len(emails_about(settings, f"incident #{incident_id}:", expected=3, wait_seconds=0)) == 2


@pytest.fixture
def waiting_input(platform, app_name):
    """Five records on a topic of the test's app; its query committed the first two 19 minutes ago
    and reports idleness now."""
    topic = f"{app_name}_input"
    ensure_topics(platform, [TopicSpec(name=topic, partitions=1, retention_ms=3600_000)])
    producer = Producer({"bootstrap.servers": platform.kafka.bootstrap_servers})
    for n in range(5):
        producer.produce(topic, value=b"%d" % n)
    assert producer.flush(10) == 0
    heartbeat(platform, app_name, seconds_ago=1, status="idle", batch_id=3)
    progress(platform, app_name, topic, batch_id=3, seconds_ago=19 * 60, offset=2)
    yield topic
    delete_topics(platform, [topic])


def progress(settings, app, topic, batch_id, seconds_ago, offset):
    execute(settings, """
        INSERT INTO stream_progress (query_name, run_id, batch_id, app, checkpoint_id, trigger_at, duration_ms,
                                     input_rows, end_offsets)
        VALUES (%s, %s, %s, %s, %s, now() - %s * interval '1 second', 100, 2, %s)
    """, (f"{app}.main", str(uuid.uuid4()), batch_id, app, str(uuid.uuid4()), seconds_ago, f'[{{"{topic}": {{"0": {offset}}}}}]'))


def test_input_seen_waiting_without_a_batch_for_the_stall_time_is_a_stall(platform, app_name, waiting_input):
    asyncio.run(supervise_for(trigger_for(app_name, limits=replace(LIMITS, stall_seconds=3)), 6))
    ((incident_id, problem, reason, figures, _),) = incidents(platform, app_name)
    assert problem == "stalled" and figures["affected"] == [f"{app_name}.main"]
    assert re.fullmatch(rf"{app_name}\.main: 3 records waiting for \d s, no batch", reason)
    emails_about(platform, f"incident #{incident_id}: {app_name} is stalled: {app_name}.main", expected=1)


def test_input_served_after_a_long_idle_period_is_no_stall(platform, app_name, waiting_input):
    served = lambda: progress(platform, app_name, waiting_input, batch_id=4, seconds_ago=0, offset=5)  # noqa: E731
    asyncio.run(supervise_for(trigger_for(app_name, limits=replace(LIMITS, stall_seconds=5)), 8, meanwhile=served))
    assert incidents(platform, app_name) == []


def test_a_healthy_app_opens_nothing(platform, app_name):
    heartbeat(platform, app_name, seconds_ago=1, status="idle")
    asyncio.run(supervise_for(trigger_for(app_name), 3))
    assert incidents(platform, app_name) == []


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
