"""Send generated traffic to Kafka: validated, paced, counted, flushed cleanly on stop.

Every event is validated against its contract (``globalmart.events``) just before it is sent;
one that fails goes to the dead-letter topic with the reason instead. The producer is
idempotent with ``acks=all``, keyed by user for per-user ordering, and reports delivery
failures only (``delivery.report.only.error``), so the success path costs no Python callback.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
from confluent_kafka import KafkaException, Producer
from pydantic import ValidationError

from globalmart.events import SCHEMA_VERSION, TOPIC_CONTRACTS, describe_errors
from globalmart.generator.catalog import get_catalog
from globalmart.generator.render import Message
from globalmart.generator.stock_rules import restocked_units
from globalmart.generator.traffic import TrafficConfig, TrafficStream
from globalmart.settings import Settings

if TYPE_CHECKING:
    from globalmart.generator.stock_ledger import StockLedger

log = logging.getLogger(__name__)
FLUSH_TIMEOUT_SECONDS = 30.0
EVENT_TOPICS = ("product_views", "cart_events", "transactions", "inventory")
STOCK_SAVE_SECONDS = 30.0  # a killed run's ledger misses at most this much of its sales


class GeneratorError(RuntimeError):
    """A problem the user can act on; the message says what to do."""


def producer_config(settings: Settings) -> dict:
    k = settings.kafka
    return {
        "bootstrap.servers": k.bootstrap_servers,
        "client.id": "globalmart-generator",
        "enable.idempotence": True,  # implies acks=all and in-order retries
        "acks": "all",
        "compression.type": k.producer_compression,
        "linger.ms": k.producer_linger_ms,
        "batch.size": k.producer_batch_bytes,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "partitioner": "murmur2_random",  # the Java client's partitioner: same key, same partition
        "delivery.report.only.error": True,
    }


@dataclass
class RunReport:
    seed: int
    tag: str
    mode: str
    started_at: str
    elapsed_seconds: float = 0.0
    sent: Counter = field(default_factory=Counter)  # per topic key, accepted by the producer
    truths: int = 0
    dead_letters: Counter = field(default_factory=Counter)  # per source topic
    dead_letter_reasons: Counter = field(default_factory=Counter)  # first 80 characters of each reason
    malformed_injected: Counter = field(default_factory=Counter)
    delivery_failures: Counter = field(default_factory=Counter)
    delivery_errors: list[str] = field(default_factory=list)
    undelivered: int = 0
    sim_start: str = ""
    sim_end: str = ""
    cpu_seconds: float = 0.0
    simulation: dict = field(default_factory=dict)  # sessions, carts, purchases, abandoned, ...
    stock_ledger: dict = field(default_factory=dict)  # which source set the opening stock; products saved

    @property
    def events(self) -> int:
        return sum(self.sent[t] for t in EVENT_TOPICS)

    @property
    def rate(self) -> float:
        return self.events / self.elapsed_seconds if self.elapsed_seconds else 0.0

    @property
    def ok(self) -> bool:
        return not self.delivery_failures and not self.undelivered

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "run_tag": self.tag,
            "mode": self.mode,
            "started_at": self.started_at,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "events": self.events,
            "events_per_second": round(self.rate, 1),
            "sent": dict(self.sent),
            "ground_truth_records": self.truths,
            "dead_letters": dict(self.dead_letters),
            "dead_letter_reasons": dict(self.dead_letter_reasons),
            "malformed_injected": dict(self.malformed_injected),
            "delivery_failures": dict(self.delivery_failures),
            "delivery_errors": self.delivery_errors,
            "undelivered": self.undelivered,
            "event_time_start": self.sim_start,
            "event_time_end": self.sim_end,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "simulation": self.simulation,
            "stock_ledger": self.stock_ledger,
        }


class KafkaPublisher:
    def __init__(self, settings: Settings, report: RunReport):
        self.settings = settings
        self.report = report
        self.names = {key: getattr(settings.kafka, key).name for key in TOPIC_CONTRACTS}
        self.validators = {key: model.__pydantic_validator__.validate_json for key, model in TOPIC_CONTRACTS.items()}
        # restocks the simulator counted that never reach the topic (dead-lettered, delivery failed)
        self.lost_restocks: Counter = Counter()
        config = producer_config(settings)
        config["on_delivery"] = self._on_delivery_error
        config["error_cb"] = self._on_client_error
        self.producer = Producer(config)
        self._check_broker()

    def _check_broker(self) -> None:
        try:
            topics = self.producer.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise GeneratorError(
                f"Kafka at {self.settings.kafka.bootstrap_servers} did not answer ({exc}); start the platform with `make run`"
            ) from exc
        missing = sorted(name for name in self.names.values() if name not in topics)
        if missing:
            raise GeneratorError(f"Kafka topics missing: {', '.join(missing)}; `make run` creates them")

    def _on_delivery_error(self, error, message) -> None:
        self.report.delivery_failures[message.topic()] += 1
        if message.topic() == self.names["inventory"]:
            self.lost_restocks.update(restocked_units([("inventory", message.key().decode(), message.value())]))
        if len(self.report.delivery_errors) < 10:
            self.report.delivery_errors.append(f"{message.topic()}: {error}")

    def _on_client_error(self, error) -> None:
        log.warning("Kafka client: %s", error)

    def _produce(self, topic: str, value: bytes, key: str) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:  # local queue full: let the broker catch up
                self.producer.poll(0.05)

    def publish(self, messages: list[Message]) -> None:
        """Validate and send; an invalid event goes to the dead-letter topic with its reason."""
        names, validators, produce, sent = self.names, self.validators, self.producer.produce, self.report.sent
        for topic, key, value in messages:
            try:
                validators[topic](value)
            except ValidationError as exc:
                self.dead_letter(topic, key, value, describe_errors(exc))
                continue
            try:
                produce(names[topic], value, key)
            except BufferError:
                self._produce(names[topic], value, key)
            sent[topic] += 1
        self.producer.poll(0)

    def dead_letter(self, topic: str, key: str, value: bytes, reason: str) -> None:
        record = {
            "schema_version": SCHEMA_VERSION,
            "source_topic": self.names[topic],
            "stage": "generator",
            "reason": reason,
            "payload": value.decode("utf-8", errors="replace"),
            "detected_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        self._produce(self.names["dead_letters"], orjson.dumps(record), key)
        self.report.dead_letters[topic] += 1
        self.lost_restocks.update(restocked_units([(topic, key, value)]))
        self.report.dead_letter_reasons[reason[:80]] += 1

    def flush(self) -> None:
        self.report.undelivered = self.producer.flush(FLUSH_TIMEOUT_SECONDS)


class Progress:
    """A live line on a terminal; elsewhere (an Airflow task log, a pipe) an INFO record of the
    ``globalmart.generator.publisher`` logger every few seconds. A task's stderr is its log at
    ERROR level, so progress must not be written there unless a person watches a terminal."""

    def __init__(self, period_seconds: float, stream=None, enabled: bool = True):
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        # an explicit stream is written to; without one, a terminal gets the live line, the rest a log record
        self.logged = stream is None and not self.tty
        self.period = 0.5 if self.tty else period_seconds
        self.enabled = enabled
        self.last = 0.0

    def update(self, report: RunReport, traffic: TrafficStream, target: float | None, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.period):
            return
        self.last = now
        s = report.sent
        done = traffic.progress()
        if done is None:
            lag = (traffic.sim_ms - traffic.wall_ms()) / 1000
            where = f"event clock {lag:+.1f}s"
        else:
            eta = report.elapsed_seconds * (1 - done) / done if done > 0 else float("nan")
            sim = datetime.fromtimestamp(traffic.sim_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            where = f"simulated {sim} ({done:.0%}, ETA {eta:.0f}s)"
        line = (
            f"[generate] {report.elapsed_seconds:6.1f}s | {report.rate:,.0f} ev/s"
            + (f" (target {target:,.0f})" if target else "")
            + f" | views {s['product_views']:,} carts {s['cart_events']:,} tx {s['transactions']:,}"
            + f" restocks {s['inventory']:,} | truth {report.truths:,}"
            + f" | dead letters {sum(report.dead_letters.values()):,} | failed {sum(report.delivery_failures.values()):,}"
            + f" | {where}"
        )
        if self.tty:
            print("\r" + line, end="", file=self.out, flush=True)
        elif self.logged:
            log.info("%s", line)
        else:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.out, flush=True)


def run(
    settings: Settings,
    config: TrafficConfig,
    *,
    minutes: float | None = None,
    max_events: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_start: Callable[[TrafficStream, RunReport], None] | None = None,
    stock_ledger: StockLedger | None = None,
) -> RunReport:
    """Generate and publish until ``minutes`` pass, at least ``max_events`` are sent, the
    backfill ends, or ``stop`` is set (Ctrl-C / SIGTERM in the CLI); then flush and report.

    Whole batches are sent (a batch is at most one time slice), so that every event the sent
    ground truth refers to is sent too. With a ``stock_ledger`` the run sells from the stock it
    opens with and saves what it published every STOCK_SAVE_SECONDS and at the end; without
    one it starts from the catalog's initial stock (a sandbox's first run)."""
    if config.mode != "backfill" and minutes is None and max_events is None and stop is None:
        raise GeneratorError("an open-ended run needs minutes, max_events or a stop event")
    stop = stop or threading.Event()
    progress = progress or Progress(settings.generator.progress_seconds)
    catalog = get_catalog(settings.catalog, settings.generator)
    opening, sources = stock_ledger.opening() if stock_ledger else (None, {})
    traffic = TrafficStream(settings, config, catalog, opening_stock=opening)
    report = RunReport(
        seed=config.seed, tag=traffic.tag, mode=config.mode, started_at=datetime.now(UTC).isoformat(timespec="seconds")
    )
    if stock_ledger:
        report.stock_ledger = {"opening_stock_from": sources, "products_saved": 0}
    report.sim_start = _iso(traffic.sim_ms)
    publisher = KafkaPublisher(settings, report)
    if on_start:
        on_start(traffic, report)  # lets a caller watch the run live
    rate = float(config.rate or settings.generator.default_rate) if config.mode == "realtime" else None
    started, cpu_started = time.monotonic(), time.process_time()
    deadline = started + minutes * 60 if minutes is not None else None
    next_save = started + STOCK_SAVE_SECONDS
    backlog: list[Message] = []

    def save_stock() -> None:
        unpublished = publisher.lost_restocks + restocked_units(backlog)
        report.stock_ledger["products_saved"] += stock_ledger.save(traffic.simulator.stock, unpublished, traffic.tag)
    try:
        while not stop.is_set():
            now = time.monotonic()
            report.elapsed_seconds = now - started
            if deadline is not None and now >= deadline:
                break
            if max_events is not None and report.events >= max_events:
                break
            if rate is not None:  # paced: send what the clock allows, no more
                allowed = int(rate * (now - started)) - _attempted(report)
                while len(backlog) < allowed and not traffic.finished:
                    backlog.extend(_take_batch(traffic, publisher, report))
                chunk, backlog = backlog[:allowed], backlog[allowed:]
                publisher.publish(chunk)
                if not chunk:
                    time.sleep(0.002)
            else:
                if traffic.finished:
                    break
                publisher.publish(_take_batch(traffic, publisher, report))
                if report.elapsed_seconds > 1:
                    traffic.rate_hint = max(1000.0, report.rate)
            if stock_ledger and now >= next_save:
                save_stock()
                next_save = now + STOCK_SAVE_SECONDS
            progress.update(report, traffic, rate)
        # what was generated is sent: the ground truth already sent may refer to it
        publisher.publish(backlog)
        backlog = []
        if not traffic.finished:
            ending = traffic.stop()
            publisher.publish(ending.truths)
            report.truths += len(ending.truths)
    finally:
        publisher.flush()
        if stock_ledger:
            save_stock()
        report.elapsed_seconds = time.monotonic() - started
        report.cpu_seconds = time.process_time() - cpu_started
        report.sim_end = _iso(traffic.sim_ms)
        report.simulation = asdict(traffic.simulator.counters)
        progress.update(report, traffic, rate, force=True)
        progress.close()
    return report


def _attempted(report: RunReport) -> int:
    """Events sent or dead-lettered: what the pacing counts."""
    return report.events + sum(report.dead_letters.values())


def _take_batch(traffic: TrafficStream, publisher: KafkaPublisher, report: RunReport) -> list[Message]:
    """The next batch's events; its ground truth is sent at once (it is not paced traffic)."""
    batch = traffic.next_batch()
    publisher.publish(batch.truths)
    report.truths += len(batch.truths)
    report.malformed_injected.update(batch.malformed)
    return batch.events


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
