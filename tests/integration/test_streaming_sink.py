"""The exactly-once sink on the real PostgreSQL: a batch Spark replays after a crash."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from globalmart import db
from globalmart.streaming.control import poll_until
from globalmart.streaming.runner import ProgressRecorder, beat_while
from globalmart.streaming.sink import ExactlyOnceSink
from spark_jobs.streaming.inventory_tracker import apply_stock_changes, stock_movements
from spark_jobs.streaming.sales_metrics import ALL_CATEGORIES, write_window_sales
from tests.streaming_fixtures import RESTOCK, TRANSACTION, at, transaction
from tests.streaming_harness import _json_default

SCHEMA = StructType([StructField("key", StringType()), StructField("n", LongType())])


def run_counts(spark, source, checkpoint, sink):
    """Running totals per key (a stateful aggregation), one file per micro-batch, into ``sink``."""
    totals = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).json(str(source)).groupBy("key").agg(
        F.sum("n").alias("total"))
    query = (totals.writeStream.outputMode("update").foreachBatch(sink).option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True).start())
    query.awaitTermination(120)
    assert query.exception() is None, query.exception()


def test_a_replayed_batch_writes_nothing_and_its_state_still_commits(stream_env, spark, tmp_path):
    settings = stream_env
    written: list[tuple[int, dict]] = []

    def handler(batch, context):
        totals = {row["key"]: row["total"] for row in batch.collect()}

        def write(_cur) -> int:
            written.append((context.batch_id, totals))
            return len(totals)

        return write

    sink = ExactlyOnceSink(settings, "test", "test.counts", handler)
    source, checkpoint = tmp_path / "in", tmp_path / "checkpoint"
    source.mkdir()

    def add_file(index: int, rows: list[dict]) -> None:
        (source / f"batch-{index}.json").write_text("".join(json.dumps(row) + "\n" for row in rows))

    add_file(0, [{"key": "a", "n": 1}])
    run_counts(spark, source, checkpoint, sink)
    add_file(1, [{"key": "a", "n": 2}])
    run_counts(spark, source, checkpoint, sink)
    # a crash after the sink's PostgreSQL commit, before Spark's commit log: Spark replays batch 1
    for entry in ("1", ".1.crc"):
        (checkpoint / "commits" / entry).unlink()
    add_file(2, [{"key": "a", "n": 4}])
    run_counts(spark, source, checkpoint, sink)

    assert written == [(0, {"a": 1}), (1, {"a": 3}), (2, {"a": 7})]  # batch 1 once; state carried on
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT batch_id FROM stream_commits WHERE query_name = 'test.counts' ORDER BY 1")
        assert [row[0] for row in cur.fetchall()] == [0, 1, 2]


def test_sales_add_each_batch_once_and_turn_events_later_than_the_watermark_away(stream_env, spark, tmp_path):
    """Windows are sums kept in PostgreSQL: each batch adds its part, in its exactly-once
    transaction; the watermark (2 minutes behind the newest committed event) closes windows."""
    settings = stream_env
    sink = ExactlyOnceSink(settings, "sales_metrics", "sales_metrics.windows", write_window_sales(settings))
    source, checkpoint = tmp_path / "in", tmp_path / "checkpoint"
    source.mkdir()

    def run_batch(index: int, time, user: str) -> None:
        row = transaction(time, user=user, lines=[("P1", "Electronics > Phones", 1, 10.0)])
        (source / f"batch-{index}.json").write_text(json.dumps(row, default=_json_default) + "\n")
        transactions = spark.readStream.schema(TRANSACTION).option("maxFilesPerTrigger", 1).json(str(source))
        query = (transactions.writeStream.foreachBatch(sink).option("checkpointLocation", str(checkpoint))
                 .trigger(availableNow=True).start())
        query.awaitTermination(120)
        assert query.exception() is None, query.exception()

    for index, (time, user) in enumerate([
        (at(10, 0, 30), "A"),
        (at(10, 2, 0), "B"),
        (at(10, 0, 50), "C"),  # late, but its window (10:00-10:01) is still open: added
        (at(10, 6, 0), "E"),
        (at(10, 7, 0), "F"),
        (at(10, 0, 40), "D"),  # window 10:00 closed long ago: turned away, and counted
    ]):
        run_batch(index, time, user)
    # a crash after the sink's PostgreSQL commit, before Spark's commit log: the replay adds nothing
    for entry in ("5", ".5.crc"):
        (checkpoint / "commits" / entry).unlink()
    run_batch(6, at(10, 7, 10), "G")

    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT granularity, window_start, transactions, revenue, units FROM sales_window_metrics "
                    "WHERE category = %s AND country = 'USA' ORDER BY 1, 2", (ALL_CATEGORIES,))
        windows = {(g, start.astimezone(at(10).tzinfo).strftime("%H:%M")): (n, float(revenue), units)
                   for g, start, n, revenue, units in cur.fetchall()}
        cur.execute("SELECT sum(late_rows) FROM late_events WHERE query_name = 'sales_metrics.windows'")
        late = cur.fetchone()[0]
        cur.execute("SELECT units FROM product_window_sales WHERE granularity = '1h' AND product_id = 'P1'")
        product_hour = cur.fetchone()[0]
    assert windows == {
        ("1h", "10:00"): (6, 60.0, 6),  # A, B, C, E, F, G; D was late
        ("1m", "10:00"): (2, 20.0, 2), ("1m", "10:02"): (1, 10.0, 1), ("1m", "10:06"): (1, 10.0, 1),
        ("1m", "10:07"): (2, 20.0, 2),
    }
    assert late == 1
    assert product_hour == 6


def test_a_query_busy_with_a_long_batch_keeps_its_heartbeat(stream_env, spark):
    """Progress comes when a batch ends; the heartbeat says the query is alive in between."""
    recorder = ProgressRecorder(stream_env)
    spark.streams.addListener(recorder)
    release = threading.Event()

    def slow(_batch, batch_id):
        if batch_id == 1:
            release.wait(60)  # a batch far longer than the heartbeat period

    query = (spark.readStream.format("rate").option("rowsPerSecond", 1).load().writeStream
             .queryName("test.heartbeat").foreachBatch(slow).trigger(processingTime="1 second").start())
    stop = threading.Event()
    beat_while(recorder, lambda: [query], stop, period=1.0)

    def last_seen():
        with db.connect(stream_env) as conn, conn.cursor() as cur:
            cur.execute("SELECT last_seen_at, last_batch_id FROM stream_status WHERE query_name = 'test.heartbeat'")
            return cur.fetchone()

    try:
        poll_until("the query's first report", lambda: (last_seen() or (None, None))[1] is not None, 120, every=0.5)
        first, batch = last_seen()
        # inside batch 1, which waits for the release: only the heartbeat can move last_seen_at on
        _, still = poll_until("a heartbeat during the long batch", lambda: (seen := last_seen())[0] > first and seen,
                                  30, every=0.5)
        assert still == batch
    finally:
        release.set()
        stop.set()
        query.stop()
        spark.streams.removeListener(recorder)


def test_stock_of_a_product_the_catalog_learns_late_is_reconciled_with_it(stream_env, spark, tmp_path):
    """The catalog loaded after the tracker started: the product's row takes the catalog's
    initial stock when first seen, and one counted from 0 before is reconciled once."""
    settings = stream_env
    horizon = timedelta(days=9)
    sink = ExactlyOnceSink(settings, "inventory_tracker", "inventory_tracker.stock", apply_stock_changes(settings.thresholds, horizon))
    sales, arrivals, checkpoint = tmp_path / "sales", tmp_path / "arrivals", tmp_path / "checkpoint"
    sales.mkdir()
    arrivals.mkdir()

    def run_batch(index: int, lines) -> None:
        row = transaction(at(10, index), lines=lines)
        (sales / f"batch-{index}.json").write_text(json.dumps(row, default=_json_default) + "\n")
        (arrivals / f"batch-{index}.json").write_text("")
        movements = stock_movements(spark.readStream.schema(TRANSACTION).option("maxFilesPerTrigger", 1).json(str(sales)),
                                    spark.readStream.schema(RESTOCK).option("maxFilesPerTrigger", 1).json(str(arrivals)))
        query = movements.writeStream.foreachBatch(sink).option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start()
        query.awaitTermination(120)
        assert query.exception() is None, query.exception()

    def stock():
        with db.connect(settings) as conn, conn.cursor() as cur:
            cur.execute("SELECT product_id, initial_stock, stock, in_catalog FROM inventory_stock ORDER BY 1")
            return cur.fetchall()

    run_batch(0, [("P-late", "Toys", 2, 5.0)])
    assert stock() == [("P-late", 0, -2, False)]  # unknown to the catalog: counted from 0
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO product_catalog (product_id, name, category, department, price, initial_stock, rating, "
                    "catalog_fingerprint) VALUES ('P-late', 'Kite', 'Toys', 'Toys', 5.0, 100, 4.0, 'test'), "
                    "('P-new', 'Ball', 'Toys', 'Toys', 3.0, 50, 4.0, 'test')")
    run_batch(1, [("P-late", "Toys", 1, 5.0), ("P-new", "Toys", 3, 3.0)])
    assert stock() == [("P-late", 100, 97, True), ("P-new", 50, 47, True)]
