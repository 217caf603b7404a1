"""Replaying dead letters: check them again and re-publish the ones that now pass.

A dead letter (PostgreSQL ``dead_letters``) is a record that broke its topic's contract. Once
the cause is fixed — the payload corrected in the table, or the contract widened (a new
country, say) — :func:`replay` checks the selected dead letters against the current contract
(:mod:`globalmart.events`, or the alert message model for the ``alerts`` topic) and:

- re-publishes each one that passes to its ``source_topic`` and sets ``replayed_at``, so a
  later replay never sends it again;
- records the current reason of each one that still fails (the first reason is kept in
  ``original_reason``);
- with ``dry_run``, only reports what it would do.

The rows being replayed are locked (``FOR UPDATE SKIP LOCKED``) and marked in the same
transaction that is committed once the producer has confirmed every record, so two replays
never send one dead letter twice, and a failed send marks nothing. Only a crash in the instant
between the broker's confirmation and the commit would send a record again on the next replay.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from psycopg2 import sql

from globalmart import db
from globalmart.settings import Settings

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_SECONDS = 30
REASON_EXAMPLES = 5  # distinct reasons of still-invalid dead letters shown in the report

Validator = Callable[[bytes], "str | None"]  # payload → None when valid, else the reason


@dataclass(frozen=True)
class DeadLetterId:
    """A dead letter's key: where the rejected record was read (or where the generator's reject was)."""

    kafka_topic: str
    kafka_partition: int
    kafka_offset: int

    @classmethod
    def parse(cls, text: str) -> DeadLetterId:
        """``topic:partition:offset``, as the report and the DAG's form show them."""
        parts = text.strip().rsplit(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
            raise ValueError(f"dead letter id {text!r} is not topic:partition:offset")
        return cls(parts[0], int(parts[1]), int(parts[2]))

    def __str__(self) -> str:
        return f"{self.kafka_topic}:{self.kafka_partition}:{self.kafka_offset}"


@dataclass(frozen=True)
class ReplayRequest:
    source_topic: str | None = None  # only dead letters of this topic (None: every topic)
    detected_from: datetime | None = None  # detected_at >= this
    detected_to: datetime | None = None  # detected_at < this
    ids: tuple[DeadLetterId, ...] = ()  # only these (empty: any)
    dry_run: bool = False
    limit: int = 1000


@dataclass
class ReplayReport:
    dry_run: bool
    examined: int = 0
    republished: Counter = field(default_factory=Counter)  # per topic (would be, in a dry run)
    still_invalid: Counter = field(default_factory=Counter)  # per topic
    reasons: Counter = field(default_factory=Counter)  # the still-invalid ones' reasons
    republished_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "examined": self.examined,
            "republished": sum(self.republished.values()),
            "republished_by_topic": dict(self.republished),
            "still_invalid": sum(self.still_invalid.values()),
            "still_invalid_by_topic": dict(self.still_invalid),
            "top_reasons": dict(self.reasons.most_common(REASON_EXAMPLES)),
            "republished_ids": self.republished_ids,
        }


def validators(settings: Settings) -> dict[str, Validator]:
    """Topic name → its current contract check, for every topic a dead letter can be replayed to."""
    from globalmart.alerting.messages import MalformedAlert, parse_alert
    from globalmart.events import TOPIC_CONTRACTS, validate_payload

    checks: dict[str, Validator] = {
        getattr(settings.kafka, key).name: (lambda payload, model=model: validate_payload(model, payload))
        for key, model in TOPIC_CONTRACTS.items()
        if key != "dead_letters"  # a reject of a reject is not replayed as one
    }

    def alert_check(payload: bytes) -> str | None:
        try:
            parse_alert(payload)
        except MalformedAlert as bad:
            return bad.reason
        return None

    checks[settings.kafka.alerts.name] = alert_check
    return checks


def record_key(payload: bytes) -> bytes | None:
    """The Kafka key the generator gives such an event: its shopper (or product), so that one
    shopper's events stay on one partition."""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if isinstance(event, dict):
        for name in ("user_id", "product_id"):
            if isinstance(event.get(name), str):
                return event[name].encode()
    return None


def _select(request: ReplayRequest) -> tuple[sql.Composed, list]:
    conditions, args = [sql.SQL("replayed_at IS NULL")], []
    if request.source_topic:
        conditions.append(sql.SQL("source_topic = %s"))
        args.append(request.source_topic)
    if request.detected_from:
        conditions.append(sql.SQL("detected_at >= %s"))
        args.append(request.detected_from)
    if request.detected_to:
        conditions.append(sql.SQL("detected_at < %s"))
        args.append(request.detected_to)
    if request.ids:
        conditions.append(sql.SQL(
            "(kafka_topic, kafka_partition, kafka_offset) IN "
            "(SELECT * FROM unnest(%s::text[], %s::integer[], %s::bigint[]))"))
        args += [[i.kafka_topic for i in request.ids], [i.kafka_partition for i in request.ids],
                 [i.kafka_offset for i in request.ids]]
    query = sql.SQL(
        "SELECT kafka_topic, kafka_partition, kafka_offset, source_topic, payload FROM dead_letters WHERE {} "
        "ORDER BY detected_at, kafka_topic, kafka_partition, kafka_offset LIMIT %s FOR UPDATE SKIP LOCKED"
    ).format(sql.SQL(" AND ").join(conditions))
    return query, [*args, request.limit]


MARK_REPLAYED = """
UPDATE dead_letters SET replayed_at = now(), revalidated_at = now()
FROM unnest(%s::text[], %s::integer[], %s::bigint[]) AS r (t, p, o)
WHERE (kafka_topic, kafka_partition, kafka_offset) = (r.t, r.p, r.o)
"""

MARK_STILL_INVALID = """
UPDATE dead_letters d
SET revalidated_at = now(), original_reason = coalesce(d.original_reason, d.reason), reason = r.reason
FROM unnest(%s::text[], %s::integer[], %s::bigint[], %s::text[]) AS r (t, p, o, reason)
WHERE (d.kafka_topic, d.kafka_partition, d.kafka_offset) = (r.t, r.p, r.o)
"""


def _columns(ids: list[DeadLetterId]) -> list[list]:
    return [[i.kafka_topic for i in ids], [i.kafka_partition for i in ids], [i.kafka_offset for i in ids]]


def replay(settings: Settings, request: ReplayRequest) -> ReplayReport:
    """Check the dead letters ``request`` selects; re-publish (once) those that now pass."""
    checks = validators(settings)
    report = ReplayReport(dry_run=request.dry_run)
    passing: list[tuple[DeadLetterId, str, bytes]] = []
    failing: list[tuple[DeadLetterId, str]] = []
    with db.connect(settings) as conn:
        with conn.cursor() as cur:
            query, args = _select(request)
            cur.execute(query, args)
            rows = cur.fetchall()
        for kafka_topic, partition, offset, source_topic, payload in rows:
            letter = DeadLetterId(kafka_topic, partition, offset)
            data = payload.encode("utf-8")
            check = checks.get(source_topic)
            reason = check(data) if check else f"no contract for topic {source_topic!r}: cannot replay"
            if reason is None:
                passing.append((letter, source_topic, data))
                report.republished[source_topic] += 1
                report.republished_ids.append(str(letter))
            else:
                failing.append((letter, reason))
                report.still_invalid[source_topic] += 1
                report.reasons[reason] += 1
        report.examined = len(rows)
        log.info("%d dead letters examined: %d pass their contract now, %d still fail%s", len(rows), len(passing),
                 len(failing), " (dry run: nothing sent or changed)" if request.dry_run else "")
        if request.dry_run:
            conn.rollback()
            return report
        if passing:
            _publish(settings, passing)
            with conn.cursor() as cur:
                cur.execute(MARK_REPLAYED, _columns([letter for letter, _, _ in passing]))
        if failing:
            with conn.cursor() as cur:
                cur.execute(MARK_STILL_INVALID, [*_columns([letter for letter, _ in failing]),
                                                 [reason for _, reason in failing]])
        conn.commit()
    return report


def _publish(settings: Settings, records: list[tuple[DeadLetterId, str, bytes]]) -> None:
    """Send and wait for the broker's confirmation of every record; raise if any is not confirmed."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True})
    failures: list[str] = []
    for letter, topic, data in records:
        producer.produce(topic, value=data, key=record_key(data),
                         on_delivery=lambda err, _msg, letter=letter: err and failures.append(f"{letter}: {err}"))
        producer.poll(0)
    left = producer.flush(FLUSH_TIMEOUT_SECONDS)
    if left or failures:
        raise RuntimeError(f"{left} replayed records unconfirmed, {len(failures)} failed (nothing marked replayed): "
                           f"{failures[:3]}")
    log.info("re-published %d dead letters", len(records))


def request_from_params(params: dict) -> ReplayRequest:
    """The replay DAG's trigger form → a request; a value that does not fit raises ``ValueError``."""

    def moment(name: str) -> datetime | None:
        value = params.get(name)
        if not value:
            return None
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"{name} {value!r} needs a time zone (e.g. 2026-11-22T18:00:00Z)")
        return parsed

    request = ReplayRequest(
        source_topic=params.get("topic") or None,
        detected_from=moment("detected_from"),
        detected_to=moment("detected_to"),
        ids=tuple(DeadLetterId.parse(text) for text in params.get("ids") or () if text.strip()),
        dry_run=bool(params.get("dry_run", False)),
        limit=int(params.get("limit", ReplayRequest.limit)),
    )
    if request.detected_from and request.detected_to and request.detected_from >= request.detected_to:
        raise ValueError(f"detected_from {request.detected_from} is not before detected_to {request.detected_to}")
    return request
