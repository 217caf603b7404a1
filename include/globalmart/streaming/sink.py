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
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

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
    """The ``foreachBatch`` function of one streaming query.

    A batch that fails is tried again (``streaming.batch_attempts`` in all, counted in
    ``stream_batch_failures`` so that attempts survive a restart of the application), then its
    failing records are isolated (:mod:`globalmart.streaming.isolation`): moved to
    ``dead_letters`` with the error as the reason, the rest of the batch committed, and one
    ``data_quality.isolated_records`` alert emailed. A failure that is not the records' (an empty
    slice of the batch fails too: PostgreSQL down, a bug) fails the query instead, which the
    runner restarts with a backoff."""

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
        streaming = self.settings.streaming
        conn = self._connection()
        committed, attempts, error = self._batch_state(conn, context)
        if committed:
            conn.rollback()
            # the batch still runs, writing nothing: its stateful operators must commit their
            # state for this batch id, or Spark fails the query
            batch.write.format("noop").mode("overwrite").save()
            log.info("%s batch %s was committed before: replay skipped", self.query_name, batch_id)
            return
        while attempts < streaming.batch_attempts:
            try:
                self._write(batch, context, self._connection())
                if attempts:
                    self._record_outcome(context, isolated=0)
                self._publish_alerts()
                return
            except Exception as exc:  # noqa: BLE001 - counted, retried, then isolated: never retried forever
                error = describe_failure(exc)
                self._reset_connection()
                attempts = self._record_failure(context, error, attempts)
                log.warning("%s batch %s failed (attempt %s of %s): %s", self.query_name, batch_id, attempts,
                            streaming.batch_attempts, error)
                if attempts < streaming.batch_attempts:
                    time.sleep(streaming.batch_retry_seconds * 2 ** (attempts - 1))
        self._isolate(batch, context, error)
        self._publish_alerts(always=True)

    def _write(self, batch: DataFrame, context: BatchContext, conn, extra: Callable | None = None) -> int:
        """The handler's Spark part, then its SQL part with the commit row, in one transaction."""
        started = time.perf_counter()
        write = self.handler(batch, context)
        computed = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO stream_commits (query_name, checkpoint_id, batch_id, app) VALUES (%s, %s, %s, %s)",
                (self.query_name, context.checkpoint_id, context.batch_id, self.app),
            )
            rows = write(cur) + (extra(cur) if extra else 0)
            cur.execute(
                "UPDATE stream_commits SET rows_written = %s, spark_ms = %s, write_ms = %s, "
                "committed_at = clock_timestamp() WHERE query_name = %s AND checkpoint_id = %s AND batch_id = %s",
                (rows, round((computed - started) * 1000), round((time.perf_counter() - computed) * 1000),
                 self.query_name, context.checkpoint_id, context.batch_id),
            )
        conn.commit()
        return rows

    # -- isolation -----------------------------------------------------------------------

    def _isolate(self, batch: DataFrame, context: BatchContext, error: str) -> None:
        """Commit the batch without the records that make it fail; those become dead letters."""
        from globalmart.streaming.isolation import isolate

        records = numbered_records(batch)
        count = records.agg(F.max(RECORD)).first()[0]
        count = 0 if count is None else count + 1
        conn = self._connection()

        def trial(first: int, end: int) -> str | None:
            try:
                write = self.handler(records_between(records, first, end), context)
                with conn.cursor() as cur:
                    cur.execute("SAVEPOINT isolation_trial")
                    try:
                        write(cur)
                    finally:
                        cur.execute("ROLLBACK TO SAVEPOINT isolation_trial")
            except Exception as exc:  # noqa: BLE001 - a failing trial is the answer sought
                return describe_failure(exc)
            return None

        systemic = trial(0, 0)
        conn.rollback()
        if systemic:  # even no record fails: not the records' fault
            raise BatchFailed(f"{self.query_name} batch {context.batch_id} fails without any of its records: {systemic}")
        if trial(0, count) is None:  # the failure has passed (it was a passing fault, or ran out in an earlier run)
            conn.rollback()
            self._write(records_between(records, 0, count), context, conn)
            self._record_outcome(context, isolated=0)
            return
        conn.rollback()
        found = isolate(count, error, trial, self.settings.streaming.max_isolation_trials)
        conn.rollback()
        poisoned = found.records
        letters = dead_letters_of(self.settings, self.app, self.query_name, context, records, found)
        log.warning("%s batch %s: %s of %s records isolated in %s trials", self.query_name, context.batch_id,
                    len(poisoned), count, found.trials)
        alert = isolation_alert(self.query_name, context, count, found, letters, error)

        def set_aside(cur) -> int:
            write_dead_letters(cur, letters)
            write_alerts(cur, self.app, [alert])
            return 0

        try:
            self._write(records_except(records, poisoned), context, conn, extra=set_aside)
        except Exception as exc:  # noqa: BLE001 - the rest fails too: the whole batch is set aside
            conn.rollback()
            reason = f"the batch failed even without its isolated records: {describe_failure(exc)}"
            log.error("%s batch %s: %s", self.query_name, context.batch_id, reason)
            every = isolate(count, reason, lambda _first, _end: None, max_trials=0)
            letters = dead_letters_of(self.settings, self.app, self.query_name, context, records, every)
            alert = isolation_alert(self.query_name, context, count, every, letters, reason)
            poisoned = every.records
            self._write(records_between(records, 0, 0), context, conn, extra=set_aside)
        self._record_outcome(context, isolated=len(poisoned))

    # -- bookkeeping -----------------------------------------------------------------------

    @staticmethod
    def _batch_state(conn, context: BatchContext) -> tuple[bool, int, str]:
        """(whether the batch was committed before, attempts at it so far in this or an earlier
        run of the application, the last error), in one round trip. The read opens the
        transaction the batch then writes in: no extra commit or rollback."""
        key = (context.query_name, context.checkpoint_id, context.batch_id)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM stream_commits WHERE query_name = %s AND checkpoint_id = %s AND batch_id = %s), "
                "f.attempts, f.last_error FROM (SELECT 1) AS one LEFT JOIN stream_batch_failures f "
                "ON f.query_name = %s AND f.checkpoint_id = %s AND f.batch_id = %s",
                key + key,
            )
            committed, attempts, error = cur.fetchone()
        return committed, attempts or 0, error or ""

    def _record_failure(self, context: BatchContext, error: str, attempts: int) -> int:
        try:
            conn = self._connection()
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO stream_batch_failures (query_name, checkpoint_id, batch_id, app, attempts, last_error) "
                    "VALUES (%s, %s, %s, %s, 1, %s) ON CONFLICT (query_name, checkpoint_id, batch_id) DO UPDATE SET "
                    "attempts = stream_batch_failures.attempts + 1, last_error = EXCLUDED.last_error, "
                    "last_failed_at = clock_timestamp() RETURNING attempts",
                    (self.query_name, context.checkpoint_id, context.batch_id, self.app, dead_letter_payload(error)),
                )
                counted = cur.fetchone()[0]
            conn.commit()
            return counted
        except psycopg2.Error as exc:  # PostgreSQL is what fails: count in memory
            log.warning("%s: failure of batch %s not recorded (%s)", self.query_name, context.batch_id, exc)
            self._reset_connection()
            return attempts + 1

    def _record_outcome(self, context: BatchContext, isolated: int) -> None:
        conn = self._connection()
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE stream_batch_failures SET isolated_records = %s, resolved_at = clock_timestamp() "
                "WHERE query_name = %s AND checkpoint_id = %s AND batch_id = %s",
                (isolated, self.query_name, context.checkpoint_id, context.batch_id),
            )
        conn.commit()

    def _publish_alerts(self, always: bool = False) -> None:
        if self.publishes_alerts or always:
            self._alert_publisher().publish_pending(self._connection())

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.settings.postgres.dsn())
        return self._conn

    def _reset_connection(self) -> None:
        # after a failure start from a fresh connection (the old one may be broken or mid-transaction)
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _alert_publisher(self) -> AlertPublisher:
        if self._publisher is None:
            self._publisher = AlertPublisher(self.settings, self.app)
        return self._publisher


class BatchFailed(RuntimeError):
    """A micro-batch fails whatever records it holds: the query fails and is restarted."""


MAX_FAILURE_TEXT = 2000
RECORD = "_record"  # the number of a batch's record while its failing records are isolated
COORDINATES = ("kafka_topic", "kafka_partition", "kafka_offset")


def describe_failure(error: BaseException) -> str:
    """The exception as one readable text: its type and first lines (Spark's are long)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:MAX_FAILURE_TEXT]


def numbered_records(batch: DataFrame) -> DataFrame:
    """The batch computed once, each row with the number (0..n-1) of the record it came from:
    its Kafka coordinates when it has them (all rows of one record go together), else the row."""
    rows = batch.localCheckpoint(eager=True)
    keys = [F.col(c) for c in COORDINATES] if set(COORDINATES) <= set(batch.columns) else [F.monotonically_increasing_id()]
    numbered = rows.withColumn(RECORD, F.dense_rank().over(Window.orderBy(*keys)) - 1)
    return numbered.localCheckpoint(eager=True)


def records_between(records: DataFrame, first: int, end: int) -> DataFrame:
    return records.where(F.col(RECORD).between(first, end - 1)).drop(RECORD)


def records_except(records: DataFrame, poisoned: list[int]) -> DataFrame:
    return records.where(~F.col(RECORD).isin(poisoned)).drop(RECORD) if poisoned else records.drop(RECORD)


def dead_letters_of(settings: Settings, app: str, query_name: str, context: BatchContext, records: DataFrame,
                    found) -> pa.Table:
    """The isolated records as dead letters: from Kafka as they were read when the rows say where
    they came from (so that ``replay_dead_letters`` can send them again); otherwise the query's
    output row itself, as JSON, under the query's name."""
    rows = records.where(F.col(RECORD).isin(found.records)).collect() if found.records else []
    by_record: dict[int, dict] = {}
    for row in rows:
        by_record.setdefault(row[RECORD], row.asDict(recursive=True))
    read = raw_records(settings, [tuple(r[c] for c in COORDINATES) for r in by_record.values()
                                  if all(r.get(c) is not None for c in COORDINATES)])
    letters = []
    for number, row in sorted(by_record.items()):
        where = tuple(row.get(c) for c in COORDINATES)
        reason = f"{query_name} failed on it: {found.reason_of(number)}"
        if where in read:
            letters.append((*where, where[0], app, reason, read[where][0], read[where][1]))
        else:
            payload = _json_dumps({k: v for k, v in row.items() if k != RECORD}).encode()
            letters.append((query_name, context.batch_id, number, query_name, app, reason, payload, None))
    columns = list(zip(*letters)) if letters else [[] for _ in DEAD_LETTER_COLUMNS]
    return pa.table({name: pa.array(values) if values else pa.array([], pa.null())
                     for name, values in zip(DEAD_LETTER_COLUMNS, columns, strict=True)})


def raw_records(settings: Settings, coordinates: list[tuple]) -> dict[tuple, tuple[bytes, datetime | None]]:
    """(topic, partition, offset) → (value, broker timestamp) read back from Kafka (those still kept)."""
    from confluent_kafka import Consumer, TopicPartition

    if not coordinates:
        return {}
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "globalmart-isolation",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    found = {}
    try:
        for topic, partition, offset in sorted(set(coordinates)):
            consumer.assign([TopicPartition(topic, partition, offset)])
            message = consumer.poll(10)
            if message is not None and not message.error() and message.offset() == offset:
                stamp = message.timestamp()[1]
                found[(topic, partition, offset)] = (message.value() or b"", datetime.fromtimestamp(stamp / 1000, UTC))
    finally:
        consumer.close()
    return found


def isolation_alert(query_name: str, context: BatchContext, count: int, found, letters: pa.Table, error: str) -> Alert:
    ids = [f"{t}:{p}:{o}" for t, p, o in zip(*(letters.column(c).to_pylist() for c in COORDINATES), strict=True)]
    isolated = len(found.records)
    return Alert(
        alert_id=f"isolated:{query_name}:{context.checkpoint_id}:{context.batch_id}",
        kind="data_quality.isolated_records",
        severity="warning",
        subject=f"{isolated} record{'s' if isolated != 1 else ''} set aside by {query_name} (batch {context.batch_id})",
        detail={
            "about": query_name,
            "description": f"Micro-batch {context.batch_id} of {query_name} failed again and again; the {isolated} of its "
                           f"{count} records that make it fail went to dead_letters and the other {count - isolated} "
                           "were committed. The query goes on.",
            "advice": "fix the cause (the reason below), then send the dead letters again with the replay_dead_letters "
                      "DAG (its form takes these ids).",
            "facts": {"Query": query_name, "Batch": context.batch_id, "Records set aside": isolated,
                      "Records committed": count - isolated, "Reason": error[:500],
                      "Dead letters": ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")},
        },
        event_time=datetime.now(UTC),
    )


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
