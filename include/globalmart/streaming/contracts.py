"""The event contracts, seen from Spark: schemas derived from the pydantic models, and the check.

A record is valid when its pydantic contract (``globalmart.events``) accepts it: the same
rule, and the same reason text, as the generator's own check before sending, with the broker's
timestamp as the time it was received. The check runs in a pandas UDF so that every app, and
the lake, agree on what a valid event is. The platform's ClockTicks are valid on every event
topic: they reach the queries as ``tick`` rows, to move watermarks, never as events.
"""

from __future__ import annotations

import types
import typing
from datetime import datetime

import pandas as pd
from pydantic import BaseModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from globalmart.events import TOPIC_CONTRACTS
from globalmart.settings import Settings

KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")


def _spark_type(annotation) -> tuple[DataType, bool]:
    """(Spark type, nullable) of a pydantic field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        spark_type, _ = _spark_type(members[0])
        return spark_type, True
    if origin is typing.Annotated:
        return _spark_type(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return _spark_type(type(typing.get_args(annotation)[0]))
    if origin is list:
        (item,) = typing.get_args(annotation)
        return ArrayType(_spark_type(item)[0], containsNull=False), False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return spark_schema(annotation), False
    simple = {str: StringType(), int: LongType(), float: DoubleType(), bool: BooleanType(), datetime: TimestampType()}
    if annotation in simple:
        return simple[annotation], False
    raise TypeError(f"no Spark type for {annotation!r}")


def spark_schema(model: type[BaseModel]) -> StructType:
    """The Spark schema of a contract: one field per model field, nullable where optional."""
    fields = []
    for name, field in model.model_fields.items():
        spark_type, nullable = _spark_type(field.annotation)
        fields.append(StructField(name, spark_type, nullable or not field.is_required()))
    return StructType(fields)


def dedup_horizon_seconds(settings: Settings) -> int:
    """How long a business id is remembered to count it once: longer than the contract's event
    age window plus its lead, so any duplicate the contract still accepts is recognised (an older
    one is refused by the contract), with an hour of slack for partitions read unevenly."""
    bounds = settings.contracts
    return int(bounds.max_event_age_hours * 3600 + bounds.max_event_lead_seconds + 3600)


def topic_contracts(settings: Settings) -> dict[str, str]:
    """Kafka topic name → contract key (the settings field of the topic)."""
    return {getattr(settings.kafka, key).name: key for key in TOPIC_CONTRACTS}


VERDICT = "violation string, tick boolean"


def _utc(moment) -> datetime | None:
    """A timestamp as Spark hands it to a pandas UDF (naive, in the session's UTC) → aware UTC."""
    if moment is None or pd.isna(moment):
        return None
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def contract_verdict(topic_to_contract: dict[str, str]):
    """A pandas UDF (topic, value bytes, broker timestamp) → (violation: None when valid, else the
    reason; tick: whether it is a ClockTick)."""

    @pandas_udf(VERDICT)
    def verdict(topics: pd.Series, values: pd.Series, received: pd.Series) -> pd.DataFrame:
        from globalmart.events import TOPIC_CONTRACTS, check_payload

        reasons, ticks = [], []
        for topic, value, received_at in zip(topics, values, received):
            key = topic_to_contract.get(topic)
            if key is None:
                reason, tick = f"no contract for topic {topic!r}", False
            elif value is None:
                reason, tick = "empty record (null value)", False
            else:
                reason, tick = check_payload(TOPIC_CONTRACTS[key], bytes(value), _utc(received_at))
            reasons.append(reason)
            ticks.append(tick)
        return pd.DataFrame({"violation": pd.Series(reasons, dtype=object), "tick": pd.Series(ticks, dtype=bool)})

    return verdict


def checked_records(records: DataFrame, settings: Settings) -> DataFrame:
    """Kafka records with their coordinates, ``violation`` (null when the record is valid) and
    ``tick`` (a valid ClockTick)."""
    verdict = contract_verdict(topic_contracts(settings))
    return records.select(
        F.col("value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        verdict(F.col("topic"), F.col("value"), F.col("timestamp")).alias("verdict"),
    ).select("*", "verdict.violation", "verdict.tick").drop("verdict")


def valid_events(checked: DataFrame, settings: Settings, contract_key: str, with_ticks: bool = False) -> DataFrame:
    """The valid events of one topic, parsed into the contract's columns plus Kafka coordinates.

    ``with_ticks``: the topic's ClockTicks too, as rows with ``tick`` true and only ``event_time``
    set (a tick parsed with the event's schema), for a query whose watermark they should move."""
    topic = getattr(settings.kafka, contract_key).name
    schema = spark_schema(TOPIC_CONTRACTS[contract_key])
    valid = F.col("violation").isNull() & (F.lit(True) if with_ticks else ~F.col("tick"))
    columns = [*KAFKA_COLUMNS, "tick"] if with_ticks else KAFKA_COLUMNS
    return checked.where((F.col("kafka_topic") == topic) & valid).select(
        F.from_json(F.col("value").cast("string"), schema).alias("event"), *columns
    ).select("event.*", *columns)


def dead_letter_rows(checked: DataFrame, stage: str) -> DataFrame:
    """The invalid records, shaped for the ``dead_letters`` table."""
    return checked.where(F.col("violation").isNotNull()).select(
        *KAFKA_COLUMNS[:3],
        F.col("kafka_topic").alias("source_topic"),
        F.lit(stage).alias("stage"),
        F.col("violation").alias("reason"),
        F.col("value").alias("payload"),  # bytes: decoded when written (see sink.dead_letter_payload)
        "kafka_timestamp",
    )

