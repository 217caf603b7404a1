"""Raw archiver: every valid event into the lake, every invalid record into ``dead_letters``.

The lake is Parquet, one dataset per topic (``<lake>/<topic key>/``), partitioned by
``event_date`` and ``event_hour`` (UTC), with each record's Kafka coordinates. Spark's file
sink writes it exactly once: a file becomes part of the dataset when its batch is committed
in ``<dataset>/_spark_metadata``, so readers open the dataset root and filter on
``event_date`` (partition pruning), never a partition folder on its own.

Records that break their contract, from any input topic, go to the ``dead_letters`` table with
the reason and the raw payload; so do the generator's own rejects from the ``dead_letters``
topic. No record stops the app.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.events import DeadLetter
from globalmart.settings import Settings
from globalmart.streaming.contracts import checked_records, dead_letter_rows, spark_schema, valid_events
from globalmart.streaming.runner import RunOptions, kafka_stream, run, start_sink_query, with_trigger
from globalmart.streaming.sink import BatchContext, write_dead_letters

APP = "raw_archiver"
ARCHIVED_TOPICS = ("transactions", "product_views", "cart_events", "inventory")


def lake_rows(events: DataFrame) -> DataFrame:
    """Events with their partition columns: ``event_date`` and ``event_hour`` of event_time (UTC)."""
    return events.withColumn("event_date", F.to_date("event_time")).withColumn("event_hour", F.hour("event_time"))


def generator_rejects(records: DataFrame) -> DataFrame:
    """The generator's dead-letter topic, shaped like the table's rows."""
    letter = F.from_json(F.col("value").cast("string"), spark_schema(DeadLetter)).alias("letter")
    return records.select(letter, "value", "topic", "partition", "offset", "timestamp").select(
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.coalesce("letter.source_topic", F.lit("unknown")).alias("source_topic"),
        F.coalesce("letter.stage", F.lit("generator")).alias("stage"),
        F.coalesce("letter.reason", F.lit("unreadable dead letter")).alias("reason"),
        F.coalesce(F.col("letter.payload").cast("binary"), F.col("value")).alias("payload"),
        F.col("timestamp").alias("kafka_timestamp"),
    )


def write_dead_letter_batch(batch: DataFrame, _context: BatchContext):
    dead = batch.toArrow()
    return lambda cur: write_dead_letters(cur, dead)


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    queries = []
    for key in ARCHIVED_TOPICS:
        checked = checked_records(kafka_stream(spark, settings, [key]), settings)
        writer = (
            lake_rows(valid_events(checked, settings, key))
            .writeStream.queryName(f"{APP}.lake_{key}")
            .format("parquet")
            .partitionBy("event_date", "event_hour")
            .option("path", str(settings.lake_dir / key))
            .option("checkpointLocation", options.checkpoint(f"lake_{key}"))
        )
        queries.append(with_trigger(writer, options, settings.streaming.archive_trigger_seconds).start())
    checked = checked_records(kafka_stream(spark, settings, list(ARCHIVED_TOPICS)), settings)
    rejects = dead_letter_rows(checked, APP).unionByName(generator_rejects(kafka_stream(spark, settings, ["dead_letters"])))
    queries.append(start_sink_query(rejects, settings, options, "dead_letters", write_dead_letter_batch, output_mode="append",
                                    trigger_seconds=settings.streaming.archive_trigger_seconds))
    return queries


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
