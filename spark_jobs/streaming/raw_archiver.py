"""Raw archiver: every valid event into the lake, every invalid record into ``dead_letters``.

The lake is Parquet, one dataset per topic (``<lake>/<topic key>/``), partitioned by
``event_date`` and ``event_hour`` (UTC), with each record's Kafka coordinates. Spark's file
sink writes it exactly once: a file becomes part of the dataset when its batch is committed
in ``<dataset>/_spark_metadata``, so readers open the dataset root and filter on
``event_date`` (partition pruning), never a partition folder on its own.

Each event is archived once: an event delivered again (a producer retry, a replay) is dropped by
its business id, which Spark remembers for ``contracts.dedup_horizon_seconds`` of event time;
an older duplicate is refused by the contract itself. ClockTicks are not archived.

Records that break their contract, from any input topic, go to the ``dead_letters`` table with
the reason and the raw payload; so do the generator's own rejects from the ``dead_letters``
topic. No record stops the app.
"""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.events import DeadLetter
from globalmart.settings import Settings
from globalmart.streaming.contracts import (
    checked_records,
    dead_letter_rows,
    dedup_horizon_seconds,
    explain_rejection,
    spark_schema,
    valid_events,
)
from globalmart.streaming.runner import RunOptions, kafka_stream, resume_offsets, run, start_sink_query, with_trigger
from globalmart.streaming.sink import BatchContext, rows_of, write_dead_letters

APP = "raw_archiver"
ARCHIVED_TOPICS = ("transactions", "product_views", "cart_events", "inventory")
BUSINESS_ID = {"transactions": "transaction_id", "product_views": "event_id", "cart_events": "event_id",
               "inventory": "event_id"}
# the lake's checkpoints before de-duplication (stateless queries): a new query resumes after them
UNDEDUPLICATED_CHECKPOINT = "lake_{key}"
LAKE_CHECKPOINT = "lake_{key}_distinct"


def distinct_events(events: DataFrame, id_column: str, horizon_seconds: int) -> DataFrame:
    """Each business id once, remembered for ``horizon_seconds`` of event time."""
    return events.withWatermark("event_time", f"{horizon_seconds} seconds").dropDuplicatesWithinWatermark([id_column])


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


def dead_letter_writer(settings: Settings):
    """The dead-letter query's batch handler. Under the native check the records this app rejected
    get pydantic's reason here, for the rejected rows only (the pandas UDF gave it already); the
    generator's rejects keep theirs."""

    def write(batch: DataFrame, _context: BatchContext):
        dead = batch.toArrow()
        if not settings.streaming.native_contract_check:
            return lambda cur: write_dead_letters(cur, dead)
        reasons = [
            explain_rejection(settings, topic, payload, received_at, reason) if stage == APP else reason
            for topic, payload, received_at, stage, reason in rows_of(
                dead, ("source_topic", "payload", "kafka_timestamp", "stage", "reason"))
        ]
        dead = dead.set_column(dead.schema.get_field_index("reason"), "reason", pa.array(reasons, pa.string()))
        return lambda cur: write_dead_letters(cur, dead)

    return write


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    queries = []
    horizon = dedup_horizon_seconds(settings)
    for key in ARCHIVED_TOPICS:
        checkpoint = options.checkpoint(LAKE_CHECKPOINT.format(key=key))
        after = resume_offsets(options.checkpoint(UNDEDUPLICATED_CHECKPOINT.format(key=key)), checkpoint)
        checked = checked_records(kafka_stream(spark, settings, [key], starting_offsets=after), settings, [key])
        writer = (
            lake_rows(distinct_events(valid_events(checked, settings, key), BUSINESS_ID[key], horizon))
            .writeStream.queryName(f"{APP}.lake_{key}")
            .format("parquet")
            .partitionBy("event_date", "event_hour")
            .option("path", str(settings.lake_dir / key))
            .option("checkpointLocation", checkpoint)
        )
        queries.append(options.start(f"{APP}.lake_{key}", with_trigger(writer, options, settings.streaming.archive_trigger_seconds)))
    checked = checked_records(kafka_stream(spark, settings, list(ARCHIVED_TOPICS)), settings, list(ARCHIVED_TOPICS))
    rejects = dead_letter_rows(checked, APP).unionByName(generator_rejects(kafka_stream(spark, settings, ["dead_letters"])))
    queries.append(start_sink_query(rejects, settings, options, "dead_letters", dead_letter_writer(settings), output_mode="append",
                                    trigger_seconds=settings.streaming.archive_trigger_seconds))
    return queries


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
