"""spark-submit entry point of the platform_smoke DAG: Kafka topic → PostgreSQL table.

Reads every record of the smoke topic (batch query, earliest → latest offsets), keeps the
events of one run, and inserts them idempotently into ``platform_smoke_events``.
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

SMOKE_EVENT_SCHEMA = StructType(
    [
        StructField("run_id", StringType()),
        StructField("event_id", StringType()),
        StructField("seq", IntegerType()),
        StructField("amount", DoubleType()),
        StructField("produced_at", StringType()),
    ]
)


def parse_smoke_events(kafka_records: DataFrame, run_id: str) -> DataFrame:
    """Kafka records (value, partition, offset) → one row per distinct event of ``run_id``."""
    parsed = kafka_records.select(
        F.from_json(F.col("value").cast("string"), SMOKE_EVENT_SCHEMA).alias("event"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )
    return (
        parsed.where(F.col("event.run_id") == F.lit(run_id))
        .select(
            "event.run_id",
            "event.event_id",
            "event.seq",
            F.col("event.amount").cast("decimal(12,2)").alias("amount"),
            F.to_timestamp("event.produced_at").alias("produced_at"),
            "kafka_partition",
            "kafka_offset",
        )
        # a retried producer task re-sends the same event ids: keep the first copy
        .dropDuplicates(["run_id", "event_id"])
    )


def main(argv: list[str] | None = None) -> None:
    from globalmart.postgres_sink import insert_new_rows, run_sql_file
    from globalmart.settings import get_settings
    from globalmart.smoke import DDL_PATH, SMOKE_TABLE

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)

    settings = get_settings()
    spark = SparkSession.builder.appName("platform_smoke").getOrCreate()
    records = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
        .option("subscribe", settings.kafka.platform_smoke.name)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    events = parse_smoke_events(records, args.run_id).cache()
    run_sql_file(settings, DDL_PATH)
    inserted = insert_new_rows(events, SMOKE_TABLE, settings)
    print(f"platform_smoke: run {args.run_id}: {events.count()} events read from Kafka, {inserted} new rows in PostgreSQL")
    spark.stop()


if __name__ == "__main__":
    main()
