"""What every streaming app shares: its Kafka source, its queries' sinks, progress, the main loop.

An app is a spark-submit entry point whose ``main()`` hands ``run()`` the function that starts
its streaming queries. ``run()`` can also host several apps in one Spark application
(``spark_jobs/streaming/all_apps.py``): on a small machine one JVM and one Python worker pool
for several apps cost far less than one each, and each app gets its own FAIR scheduler pool.
An application of bulk work only (``launch.is_bulk``) lowers its own CPU priority. Either way each app keeps its
own checkpoints (``<checkpoint root>/<app>/``), so the two ways of running are interchangeable.

``run()`` records every micro-batch's progress in PostgreSQL (``stream_progress``,
``stream_status``: the supervisor's view), then waits. A query that fails is started again
from its checkpoint after a pause that doubles each time (``streaming.query_restarts`` times),
while every other query keeps running: a mart that is down stops neither the lake nor the dead
letters. A query that keeps failing then stays down (its status says ``failed``: supervision
tells a person); the process exits non-zero only when no query is left running, or at the end of
an ``--available-now`` run that lost one. SIGTERM stops the queries between batches.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener
from pyspark.sql.streaming.listener import QueryIdleEvent, QueryProgressEvent, QueryStartedEvent, QueryTerminatedEvent

from globalmart.settings import Settings, get_settings
from globalmart.streaming.contracts import checked_records, valid_events
from globalmart.streaming.launch import app_of, is_bulk
from globalmart.streaming.sink import BatchHandler, ExactlyOnceSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    app: str
    checkpoint_dir: Path
    available_now: bool  # process what the topics hold now, then stop (tests, catch-up runs)
    trigger_seconds: float
    # query name → how to start it (again): filled as the app starts its queries
    starters: dict[str, Callable[[], StreamingQuery]] = field(default_factory=dict)

    def checkpoint(self, part: str) -> str:
        return str(self.checkpoint_dir / part)

    def start(self, name: str, writer) -> StreamingQuery:
        """Start ``writer`` as the query ``name``, remembering how, so that it can be restarted."""
        self.starters[name] = writer.start
        return writer.start()


def kafka_stream(spark: SparkSession, settings: Settings, topic_keys: list[str], starting_offsets: str | None = None) -> DataFrame:
    """The records of the topics named by their settings keys, from the earliest kept offset
    (or ``starting_offsets``, Spark's JSON of topic → partition → offset) when the query's
    checkpoint is new."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", ",".join(getattr(settings.kafka, key).name for key in topic_keys))
        .option("startingOffsets", starting_offsets or "earliest")
        .option("maxOffsetsPerTrigger", settings.streaming.max_offsets_per_trigger)
        .option("maxRecordsPerPartition", settings.streaming.max_records_per_task)
        .load()
    )


def resume_offsets(previous_checkpoint: str, checkpoint: str) -> str | None:
    """Where a query that replaces another (a new checkpoint, because its plan changed) starts:
    after the last batch the previous checkpoint committed, so nothing is read twice or skipped.
    None when the new checkpoint exists already (it knows its offsets) or there is no previous one."""
    previous, current = Path(previous_checkpoint), Path(checkpoint)
    if current.exists() or not (previous / "commits").is_dir():
        return None
    committed = [int(entry.name) for entry in (previous / "commits").iterdir() if entry.name.isdigit()]
    if not committed:
        return None
    # offsets/<batch>: a version line, the batch's metadata, then one line of offsets per source
    lines = (previous / "offsets" / str(max(committed))).read_text().splitlines()
    log.info("%s starts where %s stopped: %s", checkpoint, previous_checkpoint, lines[2])
    return lines[2]


def topic_events(spark: SparkSession, settings: Settings, topic_key: str, with_ticks: bool = False) -> DataFrame:
    """The valid events of one topic, from a Kafka source of that topic alone: a query that
    needs several topics unions one source per topic, so each partition is scanned and
    contract-checked once per micro-batch (branches filtered out of one shared source would
    each scan all of it). ``with_ticks``: with the topic's ClockTicks (``contracts.valid_events``)."""
    records = checked_records(kafka_stream(spark, settings, [topic_key]), settings, [topic_key])
    return valid_events(records, settings, topic_key, with_ticks)


def start_sink_query(
    frame: DataFrame,
    settings: Settings,
    options: RunOptions,
    part: str,
    handler: BatchHandler,
    output_mode: str = "update",
    publishes_alerts: bool = False,
    trigger_seconds: float | None = None,
    checkpoint_part: str | None = None,
) -> StreamingQuery:
    """Start ``frame`` into an exactly-once PostgreSQL sink as the query ``<app>.<part>``, its
    checkpoint in ``<app>/<checkpoint_part or part>`` (a new part when the plan changes so much
    that the old checkpoint cannot be resumed)."""
    name = f"{options.app}.{part}"
    writer = (
        frame.writeStream.queryName(name)
        .outputMode(output_mode)
        .foreachBatch(ExactlyOnceSink(settings, options.app, name, handler, publishes_alerts))
        .option("checkpointLocation", options.checkpoint(checkpoint_part or part))
    )
    return options.start(name, with_trigger(writer, options, trigger_seconds))


def with_trigger(writer, options: RunOptions, seconds: float | None = None):
    if options.available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{seconds or options.trigger_seconds} seconds")


class _JsonEvents:
    """The py4j side of a Python listener that receives each progress as one JSON document.

    PySpark's own bridge (``JStreamingQueryListener``) rebuilds a progress field by field,
    some fifty py4j round trips per event, a cost paid for every query every second.
    ``progress().json()`` is one call, parsed the way
    ``StreamingQuery.recentProgress`` does."""

    def __init__(self, listener: StreamingQueryListener):
        self.listener = listener

    def onQueryStarted(self, jevent) -> None:
        self.listener.onQueryStarted(QueryStartedEvent.fromJObject(jevent))

    def onQueryProgress(self, jevent) -> None:
        self.listener.onQueryProgress(QueryProgressEvent.fromJson({"progress": json.loads(jevent.progress().json())}))

    def onQueryIdle(self, jevent) -> None:
        self.listener.onQueryIdle(QueryIdleEvent.fromJObject(jevent))

    def onQueryTerminated(self, jevent) -> None:
        self.listener.onQueryTerminated(QueryTerminatedEvent.fromJObject(jevent))

    class Java:
        implements = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]


class ProgressRecorder(StreamingQueryListener):
    """Writes each query's progress and status to PostgreSQL as Spark reports it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._conn = None
        self._lock = threading.Lock()

    @property
    def _jlistener(self):
        # read by StreamingQueryManager.addListener: this listener's JVM side, built once
        if not hasattr(self, "_jlistener_object"):
            from pyspark import SparkContext

            self._jlistener_object = SparkContext._jvm.PythonStreamingQueryListenerWrapper(_JsonEvents(self))
        return self._jlistener_object

    def _execute(self, statement: str, params: tuple) -> None:
        # progress is observability: a PostgreSQL hiccup must not fail the query
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg2.connect(self.settings.postgres.dsn())
                    self._conn.autocommit = True
                with self._conn.cursor() as cur:
                    cur.execute(statement, params)
            except psycopg2.Error as exc:
                log.warning("could not record streaming progress: %s", exc)
                self._conn = None

    def _status(self, name, query_id, run_id, status, batch_id=None, error=None) -> None:
        self._execute(
            """
            INSERT INTO stream_status (query_name, app, run_id, checkpoint_id, status, last_batch_id, last_seen_at, error)
            VALUES (%s, %s, %s, %s, %s, %s, now(), %s)
            ON CONFLICT (query_name) DO UPDATE SET app = EXCLUDED.app, run_id = EXCLUDED.run_id,
                checkpoint_id = EXCLUDED.checkpoint_id, status = EXCLUDED.status,
                last_batch_id = coalesce(EXCLUDED.last_batch_id, stream_status.last_batch_id),
                last_seen_at = now(), error = EXCLUDED.error
            """,
            (name, app_of(name), str(run_id), str(query_id), status, batch_id, error),
        )

    def heartbeat(self, queries: list[StreamingQuery]) -> None:
        """The active queries are alive, whether or not a batch ended: a long batch is no death."""
        alive = [(query.name, str(query.runId)) for query in queries if query.isActive]
        if alive:
            names, runs = (list(column) for column in zip(*alive, strict=True))
            self._execute(
                "UPDATE stream_status SET last_seen_at = now() FROM unnest(%s::text[], %s::uuid[]) AS alive (name, run_id) "
                "WHERE stream_status.query_name = alive.name AND stream_status.run_id = alive.run_id",
                (names, runs),
            )

    def onQueryStarted(self, event) -> None:
        self._status(event.name, event.id, event.runId, "running")

    def onQueryProgress(self, event) -> None:
        p = event.progress
        late = sum(op.numRowsDroppedByWatermark for op in p.stateOperators)
        state_rows = sum(op.numRowsTotal for op in p.stateOperators) if p.stateOperators else None

        def offsets(attribute: str) -> str:
            return json.dumps([_offsets(getattr(source, attribute)) for source in p.sources])

        self._execute(
            """
            INSERT INTO stream_progress (query_name, run_id, batch_id, app, checkpoint_id, trigger_at, duration_ms,
                input_rows, input_rows_per_second, processed_rows_per_second, watermark, state_rows,
                late_rows_dropped, start_offsets, end_offsets, latest_offsets, durations_ms)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING
            """,
            (
                p.name, str(p.runId), p.batchId, app_of(p.name), str(p.id), p.timestamp, p.batchDuration,
                p.numInputRows, _finite(p.inputRowsPerSecond), _finite(p.processedRowsPerSecond),
                (p.eventTime or {}).get("watermark"), state_rows, late,
                offsets("startOffset"), offsets("endOffset"), offsets("latestOffset"), json.dumps(p.durationMs),
            ),
        )
        self._status(p.name, p.id, p.runId, "running", batch_id=p.batchId)

    def onQueryIdle(self, event) -> None:
        self._execute(
            "UPDATE stream_status SET status = 'idle', last_seen_at = now() WHERE run_id = %s",
            (str(event.runId),),
        )

    def onQueryTerminated(self, event) -> None:
        self._execute(
            "UPDATE stream_status SET status = %s, last_seen_at = now(), error = %s WHERE run_id = %s",
            ("failed" if event.exception else "stopped", event.exception, str(event.runId)),
        )


def _offsets(raw):
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def _finite(value):
    return value if value is not None and value == value and abs(value) != float("inf") else None


def streaming_session(name: str, settings: Settings) -> SparkSession:
    """The application's SparkSession. Under spark-submit the platform's conf is already set
    (``globalmart.spark.submit_options``); setting it again here keeps a plain ``python`` run equal."""
    from globalmart.spark import streaming_conf

    builder = SparkSession.builder.appName(f"globalmart-{name}")
    for key, value in streaming_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def parse_args(name: str, settings: Settings, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=name, description=f"GlobalMart streaming: {name}")
    parser.add_argument(
        "--checkpoint-root", type=Path, default=settings.checkpoints_dir,
        help="each app keeps its queries' checkpoints in <root>/<app>/ (default: <state dir>/checkpoints)",
    )
    parser.add_argument("--available-now", action="store_true", help="process what the topics hold now, then stop")
    return parser.parse_args(argv)


StartQueries = Callable[[SparkSession, Settings, RunOptions], list[StreamingQuery]]


HEARTBEAT_SECONDS = 10.0


def beat_while(recorder: ProgressRecorder, queries: Callable[[], list[StreamingQuery]], stop: threading.Event,
               period: float = HEARTBEAT_SECONDS) -> threading.Thread:
    """A thread that heartbeats the queries every ``period`` until ``stop``: progress reports
    come only when a batch ends (or the query idles), and one batch may take minutes under load;
    without this, supervision would take a busy query for a dead one."""

    def beat() -> None:
        while not stop.wait(period):
            try:
                recorder.heartbeat(queries())
            except Exception as exc:  # noqa: BLE001 - a missed beat is only a later one
                log.warning("heartbeat not recorded: %s", exc)

    thread = threading.Thread(target=beat, name="globalmart-heartbeat", daemon=True)
    thread.start()
    return thread


@dataclass
class Supervised:
    """One query of the application, as the runner looks after it."""

    app: str
    start: Callable[[], StreamingQuery]
    query: StreamingQuery | None
    restarts: int = 0
    restart_at: float | None = None  # monotonic time of a restart that is due
    given_up: bool = False

    @property
    def waiting(self) -> bool:
        return (self.query is not None and self.query.isActive) or self.restart_at is not None


def restart_delay(restarts_done: int, base_seconds: float) -> float:
    """The pause before restart number ``restarts_done + 1``: doubling, so that a failing
    dependency (PostgreSQL down) is not hammered."""
    return base_seconds * 2 ** restarts_done


SPARK_SUBMIT_JVM = b"org.apache.spark.deploy.SparkSubmit"


def lower_priority(niceness: int) -> bool:
    """Make this Spark application nicer: every thread of every process in its process group
    (spark-submit's JVM, this driver, the Python workers; threads started later inherit it).
    Only when the group is the application's own (the launchers start spark-submit in a new
    session): a driver run by hand or by a test must not renice its caller."""
    leader = os.getpgrp()
    try:
        own_group = SPARK_SUBMIT_JVM in Path(f"/proc/{leader}/cmdline").read_bytes()
    except OSError:
        own_group = False
    if not own_group:
        log.info("not lowering the CPU priority: process group %s is not a spark-submit of its own", leader)
        return False
    os.setpriority(os.PRIO_PGRP, leader, niceness)  # PRIO_PGRP reaches every thread, PRIO_PROCESS only one
    log.info("bulk work: CPU priority lowered to nice %s (process group %s)", niceness, leader)
    return True


def run(name: str, apps: dict[str, StartQueries], argv=None) -> None:
    """Run the queries of ``apps`` in one Spark application named ``name`` until it is stopped
    (SIGTERM/SIGINT), its queries end (``--available-now``) or every one has failed for good."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    args = parse_args(name, settings, argv)
    spark = streaming_session(name, settings)
    if is_bulk(list(apps)) and settings.streaming.bulk_niceness:
        lower_priority(settings.streaming.bulk_niceness)
    recorder = ProgressRecorder(settings)
    spark.streams.addListener(recorder)
    supervised: dict[str, Supervised] = {}
    for app, start_queries in apps.items():
        # a query's stream thread inherits the local properties set when it starts
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", app)
        options = RunOptions(app, args.checkpoint_root / app, args.available_now, settings.streaming.trigger_seconds)
        for query in start_queries(spark, settings, options):
            supervised[query.name] = Supervised(app, options.starters[query.name], query)
    log.info("%s: started %s", name, ", ".join(supervised))

    stopping = threading.Event()

    def request_stop(signum, _frame):
        # no Spark call in a signal handler: it would re-enter the py4j call the main thread is in
        log.info("%s: signal %s, stopping queries after their current batch", name, signum)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    done = threading.Event()
    beat_while(recorder, lambda: [s.query for s in supervised.values() if s.query is not None], done)
    lost = wait(spark, supervised, stopping, settings.streaming.query_restarts, settings.streaming.query_restart_delay_seconds)
    done.set()
    spark.stop()
    if lost:
        sys.exit(f"{name}: {', '.join(lost)} failed {settings.streaming.query_restarts + 1} times and stayed down")


def wait(spark: SparkSession, supervised: dict[str, Supervised], stopping: threading.Event, restarts: int,
         delay_seconds: float) -> list[str]:
    """Look after the queries until every one has ended (or ``stopping`` is set): a failed query
    is restarted after a pause, up to ``restarts`` times, the others running meanwhile. Returns
    the queries that failed for good."""
    while any(s.waiting for s in supervised.values()):
        if stopping.is_set():
            for s in supervised.values():
                if s.query is not None:
                    s.query.stop()
            break
        try:
            spark.streams.awaitAnyTermination(timeout=2)
        except StreamingQueryException:  # a query failed: found below (anything else ends the app)
            pass
        spark.streams.resetTerminated()
        now = time.monotonic()
        for name, s in supervised.items():
            if s.query is not None and not s.query.isActive:
                error = s.query.exception()
                s.query = None
                if error is None:
                    continue  # ended on its own (available-now)
                if s.restarts >= restarts:
                    s.given_up = True
                    log.error("%s failed %s times: it stays down (%s)", name, s.restarts + 1, error)
                    continue
                pause = restart_delay(s.restarts, delay_seconds)
                s.restart_at, s.restarts = now + pause, s.restarts + 1
                log.error("%s failed; restart %s of %s in %.0f s, the other queries go on: %s",
                          name, s.restarts, restarts, pause, error)
            elif s.restart_at is not None and now >= s.restart_at:
                spark.sparkContext.setLocalProperty("spark.scheduler.pool", s.app)
                s.restart_at = None
                try:
                    s.query = s.start()
                    log.info("%s restarted from its checkpoint", name)
                except Exception as exc:  # noqa: BLE001 - counts as one more failure
                    log.error("%s could not be restarted: %s", name, exc)
                    s.restart_at = now + restart_delay(s.restarts, delay_seconds) if s.restarts < restarts else None
                    s.given_up = s.restart_at is None
                    s.restarts += 1
    return [name for name, s in supervised.items() if s.given_up]
