"""Exactly-once PostgreSQL writes from ``foreachBatch``, and the alert outbox.

Each micro-batch is written in one PostgreSQL transaction that also inserts the batch's row
into ``stream_commits`` (query name, checkpoint id, batch id). Spark replays a batch after a
crash with the same id and the same offsets; the replay finds the row and writes nothing
(the batch still runs into Spark's ``noop`` sink, so that its state stores commit).
Upserts are additionally keyed, so even an unguarded replay would not duplicate rows.

Alerts are rows of the ``alerts`` table written in that same transaction; after the commit
they are published to the ``alerts`` Kafka topic and marked published. A crash in between
publishes them with the next batch: at least once, with a stable ``alert_id`` to deduplicate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
from psycopg2 import sql
from psycopg2.extras import Json, execute_values
from pyspark.sql import DataFrame

from globalmart.settings import Settings

log = logging.getLogger(__name__)

QUERY_ID_PROPERTY = "sql.streaming.queryId"  # set by Spark on the thread that runs a micro-batch
PAGE_ROWS = 2000


@dataclass(frozen=True)
class BatchContext:
    app: str
    query_name: str
    checkpoint_id: str
    batch_id: int


# a batch handler does its Spark work, then returns the SQL part, run inside the transaction
SqlWrite = Callable[[psycopg2.extensions.cursor], int]
BatchHandler = Callable[[DataFrame, BatchContext], SqlWrite]


def rows_of(table: pa.Table, columns: Sequence[str]) -> list[tuple]:
    return list(zip(*(table.column(name).to_pylist() for name in columns), strict=True))


def upsert(
    cur,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple],
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> int:
    """Insert ``rows``; on a key conflict overwrite ``update`` columns (all non-key ones by default),
    or keep the existing row when ``update`` is empty. Returns the rows sent."""
    rows = list(rows)
    if not rows:
        return 0
    update = [c for c in columns if c not in key] if update is None else list(update)
    action = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in update)
        )
        if update
        else sql.SQL("DO NOTHING")
    )
    statement = sql.SQL("INSERT INTO {table} ({columns}) VALUES %s ON CONFLICT ({key}) {action}").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        action=action,
    )
    execute_values(cur, statement.as_string(cur), rows, page_size=PAGE_ROWS)
    return len(rows)


def dead_letter_payload(raw: bytes | str | None) -> str:
    """Rejected bytes (or text) as text PostgreSQL accepts: invalid UTF-8 and NUL become U+FFFD."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else (raw or "")
    return text.replace("\x00", "\ufffd")


DEAD_LETTER_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "source_topic", "stage", "reason", "payload", "kafka_timestamp")


def write_dead_letters(cur, dead: pa.Table) -> int:
    """Every text of a dead letter, not only its payload, may come from a hostile record (the
    generator's rejects topic is read as it is): each is made storable."""
    rows = [
        (*row[:3], *(dead_letter_payload(text) for text in row[3:7]), row[7])
        for row in rows_of(dead, DEAD_LETTER_COLUMNS)
    ]
    return upsert(cur, "dead_letters", DEAD_LETTER_COLUMNS, rows, key=DEAD_LETTER_COLUMNS[:3], update=())


def first_deliveries(table: pa.Table, id_column: str) -> pa.Table:
    """The rows of each business id's first delivery in the batch (lowest partition, then offset):
    an event delivered twice in one batch counts once, with all the rows of one delivery kept."""
    ids = table.column(id_column).to_pylist()
    deliveries = list(zip(table.column("kafka_partition").to_pylist(), table.column("kafka_offset").to_pylist(), strict=True))
    first: dict = {}
    for business_id, delivery in zip(ids, deliveries, strict=True):
        if business_id not in first or delivery < first[business_id]:
            first[business_id] = delivery
    return table.filter(pa.array([first[i] == d for i, d in zip(ids, deliveries, strict=True)], pa.bool_()))


CLAIM_EVENTS = """
INSERT INTO processed_events (consumer, event_key, event_time)
SELECT %s, event_key, event_time FROM unnest(%s::text[], %s::timestamptz[]) AS batch (event_key, event_time)
ON CONFLICT DO NOTHING
RETURNING event_key
"""
FORGET_EVENTS = "DELETE FROM processed_events WHERE consumer = %s AND event_time < %s"


def count_once(cur, consumer: str, table: pa.Table, id_column: str, horizon: timedelta) -> pa.Table:
    """The rows of ``table`` whose business id ``consumer`` has not counted before, claimed in the
    batch's transaction (``processed_events``); ids older than ``horizon`` are forgotten.

    ``table`` holds one delivery per id (``first_deliveries``)."""
    if not table.num_rows:
        return table
    firsts = table.group_by(id_column).aggregate([("event_time", "min")])
    cur.execute(CLAIM_EVENTS, (consumer, firsts.column(id_column).to_pylist(), firsts.column("event_time_min").to_pylist()))
    new = pa.array([row[0] for row in cur.fetchall()], pa.string())
    cur.execute(FORGET_EVENTS, (consumer, datetime.now(UTC) - horizon))
    if len(new) == firsts.num_rows:
        return table
    return table.filter(pc.is_in(table.column(id_column), value_set=new))


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    severity: str
    subject: str
    detail: dict
    event_time: datetime


def write_alerts(cur, app: str, alerts: Iterable[Alert]) -> int:
    rows = [(a.alert_id, app, a.kind, a.severity, a.subject, Json(a.detail, dumps=_json_dumps), a.event_time) for a in alerts]
    columns = ("alert_id", "app", "kind", "severity", "subject", "detail", "event_time")
    return upsert(cur, "alerts", columns, rows, key=("alert_id",), update=())


def _json_dumps(value) -> str:
    return json.dumps(value, default=lambda v: _utc_iso(v) if isinstance(v, datetime) else str(v), sort_keys=True)


class ExactlyOnceSink:
    """The ``foreachBatch`` function of one streaming query."""

    def __init__(self, settings: Settings, app: str, query_name: str, handler: BatchHandler, publishes_alerts: bool = False):
        self.settings = settings
        self.app = app
        self.query_name = query_name
        self.handler = handler
        self.publishes_alerts = publishes_alerts
        self._publisher: AlertPublisher | None = None
        self._conn = None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        checkpoint_id = batch.sparkSession.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
        context = BatchContext(self.app, self.query_name, checkpoint_id, batch_id)
        conn = self._connection()
        try:
            if self._committed(conn, context):
                # the batch still runs, writing nothing: its stateful operators must commit their
                # state for this batch id, or Spark fails the query
                batch.write.format("noop").mode("overwrite").save()
                log.info("%s batch %s was committed before: replay skipped", self.query_name, batch_id)
            else:
                started = time.perf_counter()
                write = self.handler(batch, context)
                computed = time.perf_counter()
                with conn.cursor() as cur:
                    cur.execute(
                        "INSERT INTO stream_commits (query_name, checkpoint_id, batch_id, app) VALUES (%s, %s, %s, %s)",
                        (self.query_name, checkpoint_id, batch_id, self.app),
                    )
                    rows = write(cur)
                    cur.execute(
                        "UPDATE stream_commits SET rows_written = %s, spark_ms = %s, write_ms = %s, "
                        "committed_at = clock_timestamp() WHERE query_name = %s AND checkpoint_id = %s AND batch_id = %s",
                        (rows, round((computed - started) * 1000), round((time.perf_counter() - computed) * 1000),
                         self.query_name, checkpoint_id, batch_id),
                    )
                conn.commit()
            if self.publishes_alerts:
                self._alert_publisher().publish_pending(conn)
        except BaseException:
            # the batch fails and Spark retries it from the checkpoint; start from a fresh connection
            self._conn = None
            conn.close()
            raise

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.settings.postgres.dsn())
        return self._conn

    @staticmethod
    def _committed(conn, context: BatchContext) -> bool:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM stream_commits WHERE query_name = %s AND checkpoint_id = %s AND batch_id = %s",
                (context.query_name, context.checkpoint_id, context.batch_id),
            )
            found = cur.fetchone() is not None
        conn.rollback()
        return found

    def _alert_publisher(self) -> AlertPublisher:
        if self._publisher is None:
            self._publisher = AlertPublisher(self.settings, self.app)
        return self._publisher


class AlertPublisher:
    """Sends the outbox's unpublished alerts of one app to the ``alerts`` topic."""

    def __init__(self, settings: Settings, app: str):
        from confluent_kafka import Producer

        self.app = app
        self.topic = settings.kafka.alerts.name
        self.producer = Producer(
            {"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True, "linger.ms": 5}
        )

    def publish_pending(self, conn, limit: int = 10_000) -> int:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT alert_id, kind, severity, subject, detail, event_time, created_at FROM alerts "
                "WHERE app = %s AND published_at IS NULL ORDER BY created_at, alert_id LIMIT %s FOR UPDATE SKIP LOCKED",
                (self.app, limit),
            )
            pending = cur.fetchall()
            failures = []
            for alert_id, kind, severity, subject, detail, event_time, created_at in pending:
                message = {
                    "alert_id": alert_id,
                    "app": self.app,
                    "kind": kind,
                    "severity": severity,
                    "subject": subject,
                    "detail": detail,
                    "event_time": _utc_iso(event_time),
                    "created_at": _utc_iso(created_at),
                }
                self.producer.produce(
                    self.topic, key=alert_id, value=_json_dumps(message),
                    on_delivery=lambda err, _msg, failures=failures: err and failures.append(err),
                )
            if pending:
                left = self.producer.flush(30)
                if left or failures:
                    conn.rollback()  # stay unpublished; the next batch tries again
                    log.error("alerts of %s not published (%s undelivered): %s", self.app, left, failures[:3])
                    return 0
                cur.execute(
                    "UPDATE alerts SET published_at = now() WHERE alert_id = ANY(%s)", ([row[0] for row in pending],)
                )
        conn.commit()
        return len(pending)


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
