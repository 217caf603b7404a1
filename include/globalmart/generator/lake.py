"""Generated past days written straight into the lake, without Kafka and the streaming archiver.

For benchmarks and fixtures of the daily batch that need many days quickly (a year of history
is ~36M transactions: through Kafka and the archiver that is hours). The events are the
generator's backfill (same simulator, same rendering, the catalog of the settings), written as
JSON lines, parsed by Spark with the contracts' schemas and stored like the raw archiver's
datasets (``<lake>/<topic>/event_date=…/event_hour=…``, the archiver's ``lake_rows``). Only the
Kafka coordinates are missing. Writing the same days again replaces their partitions.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from pyspark.sql import SparkSession

from globalmart.generator.catalog import get_catalog
from globalmart.generator.traffic import TrafficConfig, TrafficStream
from globalmart.settings import Settings

log = logging.getLogger(__name__)

LAKE_TOPICS = ("transactions", "product_views", "cart_events")
PROGRESS_SECONDS = 10.0


def generate_json_lines(settings: Settings, config: TrafficConfig, folder: Path) -> dict[str, int]:
    """The backfill's shopper events as ``<folder>/<topic>.jsonl``; events per topic."""
    if config.mode != "backfill":
        raise ValueError("only a backfill has past days to write into the lake")
    stream = TrafficStream(settings, config, get_catalog(settings.catalog, settings.generator))
    files = {topic: (folder / f"{topic}.jsonl").open("wb") for topic in LAKE_TOPICS}
    counts = dict.fromkeys(LAKE_TOPICS, 0)
    started = last_report = time.monotonic()
    try:
        for batch in stream:
            for topic, _key, value in batch.events:
                if topic in files:
                    files[topic].write(value + b"\n")
                    counts[topic] += 1
            if time.monotonic() - last_report > PROGRESS_SECONDS:
                last_report = time.monotonic()
                log.info("generated %.0f %%: %s (%.0f s)", 100 * (stream.progress() or 0), counts,
                         last_report - started)
    finally:
        for handle in files.values():
            handle.close()
    return counts


def write_lake(spark: SparkSession, settings: Settings, config: TrafficConfig) -> dict[str, int]:
    """Generate ``config``'s past days into ``settings.lake_dir``; events written per topic."""
    from globalmart.events import TOPIC_CONTRACTS
    from globalmart.streaming.contracts import spark_schema
    from spark_jobs.streaming.raw_archiver import lake_rows

    folder = Path(tempfile.mkdtemp(prefix="globalmart_lake_"))
    try:
        counts = generate_json_lines(settings, config, folder)
        for topic in LAKE_TOPICS:
            events = spark.read.schema(spark_schema(TOPIC_CONTRACTS[topic])).json(str(folder / f"{topic}.jsonl"))
            (lake_rows(events).write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
             .partitionBy("event_date", "event_hour").parquet(str(settings.lake_dir / topic)))
        log.info("lake %s: %s", settings.lake_dir, counts)
        return counts
    finally:
        shutil.rmtree(folder, ignore_errors=True)
