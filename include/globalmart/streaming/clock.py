"""The platform's clock on the event topics: ClockTicks, so that event time moves when traffic pauses.

Spark's event-time watermarks move only with the event times they see: once shoppers stop, no
session or cart would ever close. The clock (a platform service, ``globalmart clock``) sends
every ``streaming.clock_tick_seconds`` one ClockTick (``globalmart.events.ClockTick``) to each
partition of every event topic. The contract accepts a tick on every event topic; the sessions
queries let it move their watermark and then drop it; every mart, the lake and the dead letters
ignore it. A tick costs a few bytes: sent whether or not traffic flows, it needs no state.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import orjson
from confluent_kafka import Producer

from globalmart.settings import Settings

log = logging.getLogger(__name__)

CLOCK_TOPICS = ("transactions", "product_views", "cart_events", "inventory")
FLUSH_SECONDS = 10.0


def tick_record(topic: str, partition: int, at: datetime) -> bytes:
    moment = at.astimezone(UTC)
    return orjson.dumps({
        "schema_version": 1,
        "event_time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "tick_id": f"clock_tick:{topic}:{partition}:{int(moment.timestamp() * 1000)}",
    })


def publish_ticks(settings: Settings, at: datetime | None = None, producer: Producer | None = None) -> int:
    """One tick at ``at`` (default now) on each partition of every event topic; ticks sent."""
    producer = producer or Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True})
    moment = at or datetime.now(UTC)
    sent = 0
    for key in CLOCK_TOPICS:
        topic = getattr(settings.kafka, key).name
        for partition in producer.list_topics(topic, timeout=FLUSH_SECONDS).topics[topic].partitions:
            producer.produce(topic, tick_record(topic, partition, moment), partition=partition)
            sent += 1
    left = producer.flush(FLUSH_SECONDS)
    if left:
        raise RuntimeError(f"{left} clock ticks not delivered to Kafka at {settings.kafka.bootstrap_servers}")
    return sent


def run_clock(settings: Settings, stop: threading.Event) -> None:
    """Tick every ``streaming.clock_tick_seconds`` until ``stop`` is set; a Kafka outage is logged
    and the next tick tried (the watermarks simply wait for it)."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True})
    period = settings.streaming.clock_tick_seconds
    log.info("clock: a tick every %.0f s on each partition of %s", period, ", ".join(CLOCK_TOPICS))
    while not stop.is_set():
        try:
            publish_ticks(settings, producer=producer)
        except Exception as exc:  # noqa: BLE001 - the clock keeps going; the next tick may get through
            log.warning("clock: ticks not sent (%s)", exc)
        stop.wait(period)
    producer.flush(FLUSH_SECONDS)
