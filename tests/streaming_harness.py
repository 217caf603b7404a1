"""Run a streaming transform on the shared local SparkSession, one micro-batch per fixture batch.

Each input is a folder of JSON-lines files, one file per batch, read with
``maxFilesPerTrigger=1`` so batch N of every input lands in micro-batch N. The output of every
micro-batch is collected, as dicts, with the query's progress (watermarks, late rows dropped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType


@dataclass
class StreamRun:
    batches: list[list[dict]]
    progress: list[dict]

    @property
    def rows(self) -> list[dict]:
        return [row for batch in self.batches for row in batch]

    @property
    def late_rows_dropped(self) -> int:
        return sum(op["numRowsDroppedByWatermark"] for p in self.progress for op in p.get("stateOperators", []))


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(type(value))


def run_stream(
    spark: SparkSession,
    folder: Path,
    inputs: dict[str, tuple[StructType, list[list[dict]]]],
    build: Callable[..., DataFrame],
    output_mode: str = "update",
) -> StreamRun:
    """``inputs``: name → (schema, batches of rows); ``build(**frames)`` → the streaming result."""
    frames = {}
    batch_count = max(len(batches) for _, batches in inputs.values())
    for name, (schema, batches) in inputs.items():
        source = folder / "in" / name
        source.mkdir(parents=True)
        for index in range(batch_count):
            rows = batches[index] if index < len(batches) else []
            lines = "".join(json.dumps(row, default=_json_default) + "\n" for row in rows)
            path = source / f"batch-{index:04d}.json"
            path.write_text(lines)
            os.utime(path, (1_000_000 + index, 1_000_000 + index))  # the file source takes files oldest first
        frames[name] = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).json(str(source))
    collected: dict[int, list[dict]] = {}

    def collect(batch: DataFrame, batch_id: int) -> None:
        collected[batch_id] = [row.asDict(recursive=True) for row in batch.collect()]

    query = (
        build(**frames).writeStream.outputMode(output_mode).foreachBatch(collect)
        .option("checkpointLocation", str(folder / "checkpoint")).trigger(availableNow=True).start()
    )
    query.awaitTermination(300)
    if query.exception():
        raise query.exception()
    progress = [json.loads(p.json) for p in query.recentProgress]
    return StreamRun([collected[i] for i in sorted(collected)], progress)
