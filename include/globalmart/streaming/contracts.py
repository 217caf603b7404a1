"""The event contracts, seen from Spark: schemas derived from the pydantic models, and the check.

A record is valid when its pydantic contract (``globalmart.events``) accepts it, with the broker's
timestamp as the time it was received: checked by pydantic in a pandas UDF, or by the contract
translated to Spark SQL (``native_contract``; ``checked_records`` says which); a rejected record's
reason is pydantic's own either way, the same text as the generator's check before sending. The platform's
ClockTicks are valid on every event topic: they reach the queries as ``tick`` rows, to move
watermarks, never as events.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime

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

from globalmart.events import TOPIC_CONTRACTS, ClockTick, check_payload
from globalmart.settings import Settings
from globalmart.streaming.native_contract import accepts_ticks, native_check, sql_text

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


TICK_CHECK = native_check(ClockTick)


def checked_records(records: DataFrame, settings: Settings, topic_keys: list[str]) -> DataFrame:
    """Kafka records of the topics named by their settings keys, with their coordinates,
    ``violation`` (null when the record passes its topic's contract, else the reason) and
    ``tick`` (a valid ClockTick).

    Two ways to check, one verdict (``tests/unit/test_contract_parity.py``): pydantic itself in a
    pandas UDF (the default), or the contract translated to Spark SQL (``native_contract``,
    ``streaming.native_contract_check``), where no Python worker sees a record, the record is
    parsed once (``document``, a VARIANT) and ``explain_rejection`` gives a rejected record
    pydantic's reason. The native check is not the default yet: as written it costs about 8 times
    the UDF's CPU per record (see ``native_contract``)."""
    coordinates = records.select(
        F.col("value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    )
    if not settings.streaming.native_contract_check:
        verdict = contract_verdict(topic_contracts(settings))
        return coordinates.select(
            "*", verdict(F.col("kafka_topic"), F.col("value"), F.col("kafka_timestamp")).alias("verdict")
        ).select("*", "verdict.violation", "verdict.tick").drop("verdict")
    # the contract's JSON reading: of duplicate keys the last counts, as in pydantic
    records.sparkSession.conf.set("spark.sql.variant.allowDuplicateKeys", "true")
    parsed = coordinates.withColumn("text", F.col("value").cast("string")).withColumn("document", F.expr("try_parse_json(text)"))
    event_cases, tick_cases = [], []
    for key in topic_keys:
        model, topic = TOPIC_CONTRACTS[key], sql_text(getattr(settings.kafka, key).name)
        event_cases.append(f"WHEN kafka_topic = {topic} THEN {native_check(model).violation}")
        if accepts_ticks(model):
            tick_cases.append(f"WHEN kafka_topic = {topic} THEN ({TICK_CHECK.violation}) IS NULL")
    no_contract = "concat('no contract for topic ', kafka_topic)"
    verdicts = parsed.withColumn("event_violation", F.expr(f"CASE {' '.join(event_cases)} ELSE {no_contract} END"))
    ticks = f"CASE WHEN event_violation IS NULL THEN FALSE {' '.join(tick_cases)} ELSE FALSE END"
    return (
        verdicts.withColumn("tick", F.expr(ticks))
        .withColumn("violation", F.expr("CASE WHEN tick THEN NULL ELSE event_violation END"))
        .drop("event_violation", "text")
    )


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


def valid_events(checked: DataFrame, settings: Settings, contract_key: str, with_ticks: bool = False) -> DataFrame:
    """The valid events of one topic, in the contract's columns plus Kafka coordinates (read from
    the document the native check parsed, or parsed from the JSON).

    ``with_ticks``: the topic's ClockTicks too, as rows with ``tick`` true and only ``event_time``
    set, for a query whose watermark they should move."""
    topic = getattr(settings.kafka, contract_key).name
    valid = F.col("violation").isNull() & (F.lit(True) if with_ticks else ~F.col("tick"))
    columns = [*KAFKA_COLUMNS, "tick"] if with_ticks else KAFKA_COLUMNS
    if "document" in checked.columns:  # checked natively: parsed already
        event = F.expr(native_check(TOPIC_CONTRACTS[contract_key]).event)
    else:
        event = F.from_json(F.col("value").cast("string"), spark_schema(TOPIC_CONTRACTS[contract_key]))
    return checked.where((F.col("kafka_topic") == topic) & valid).select(event.alias("event"), *columns).select(
        "event.*", *columns)


def explain_rejection(settings: Settings, topic: str, payload: bytes | None, received_at: datetime | None,
                      native_reason: str) -> str:
    """Pydantic's reason for a record the native check rejected: the same words the generator's
    own check gives. Should pydantic accept it, the two checks disagree: the native reason stays,
    marked so that the disagreement is seen (the parity test exists to keep this from happening)."""
    key = topic_contracts(settings).get(topic)
    if key is None or payload is None:
        return native_reason
    if received_at is not None and received_at.tzinfo is None:  # Spark's session time zone is UTC
        received_at = received_at.replace(tzinfo=UTC)
    reason, _tick = check_payload(TOPIC_CONTRACTS[key], payload, received_at)
    return reason or f"{native_reason} (the streaming check refused a record pydantic accepts)"


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

