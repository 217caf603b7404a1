"""The event contracts, seen from Spark: schemas derived from the pydantic models, and the check.

A record is valid when its pydantic contract (``globalmart.events``) accepts it: the same
rule, and the same reason text, as the generator's own check before sending. The check runs
in a pandas UDF so that every app, and the lake, agree on what a valid event is.
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


def topic_contracts(settings: Settings) -> dict[str, str]:
    """Kafka topic name → contract key (the settings field of the topic)."""
    return {getattr(settings.kafka, key).name: key for key in TOPIC_CONTRACTS}


def contract_violation(topic_to_contract: dict[str, str]):
    """A pandas UDF (topic, value bytes) → None when valid, else the reason it is not."""

    @pandas_udf(StringType())
    def violation(topics: pd.Series, values: pd.Series) -> pd.Series:
        from globalmart.events import TOPIC_CONTRACTS, validate_payload

        reasons = []
        for topic, value in zip(topics, values):
            key = topic_to_contract.get(topic)
            if key is None:
                reasons.append(f"no contract for topic {topic!r}")
            elif value is None:
                reasons.append("empty record (null value)")
            else:
                reasons.append(validate_payload(TOPIC_CONTRACTS[key], bytes(value)))
        return pd.Series(reasons, dtype=object)

    return violation


def checked_records(records: DataFrame, settings: Settings) -> DataFrame:
    """Kafka records with their coordinates and ``violation`` (null when the record is valid)."""
    violation = contract_violation(topic_contracts(settings))
    return records.select(
        F.col("value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        violation(F.col("topic"), F.col("value")).alias("violation"),
    )


def valid_events(checked: DataFrame, settings: Settings, contract_key: str) -> DataFrame:
    """The valid records of one topic, parsed into the contract's columns plus Kafka coordinates."""
    topic = getattr(settings.kafka, contract_key).name
    schema = spark_schema(TOPIC_CONTRACTS[contract_key])
    return checked.where((F.col("kafka_topic") == topic) & F.col("violation").isNull()).select(
        F.from_json(F.col("value").cast("string"), schema).alias("event"), *KAFKA_COLUMNS
    ).select("event.*", *KAFKA_COLUMNS)


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

