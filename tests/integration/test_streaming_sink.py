"""The exactly-once sink on the real PostgreSQL: a batch Spark replays after a crash."""

from __future__ import annotations

import json

from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from globalmart import db
from globalmart.streaming.sink import ExactlyOnceSink

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
