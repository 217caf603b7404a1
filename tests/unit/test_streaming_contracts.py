"""The contracts as Spark sees them: derived schemas, the validity check, dead-letter rows and their reasons."""

import json
import random
from datetime import UTC, datetime

from pyspark.sql.types import ArrayType, DoubleType, LongType, StringType, StructType, TimestampType

from globalmart.events import CartEvent, Transaction, validate_payload
from globalmart.generator.malformed import MALFORMED_KINDS, applicable, corrupt
from globalmart.streaming.contracts import checked_records, dead_letter_rows, explain_rejection, spark_schema, valid_events
from globalmart.streaming.sink import dead_letter_payload
from tests.unit.test_events import SAMPLES


def test_schema_derived_from_the_pydantic_model():
    schema = spark_schema(Transaction)
    assert schema["event_time"].dataType == TimestampType()
    assert schema["schema_version"].dataType == LongType()
    assert schema["total_amount"].dataType == DoubleType() and not schema["total_amount"].nullable
    items = schema["items"].dataType
    assert isinstance(items, ArrayType) and isinstance(items.elementType, StructType)
    assert items.elementType["quantity"].dataType == LongType()
    cart = spark_schema(CartEvent)
    assert cart["product_id"].dataType == StringType() and cart["product_id"].nullable


def kafka_frame(spark, records):
    now = datetime.now(UTC)
    rows = [(topic, value, 0, offset, now) for offset, (topic, value) in enumerate(records)]
    return spark.createDataFrame(rows, "topic string, value binary, partition int, offset long, timestamp timestamp")


def test_valid_records_parse_and_each_defect_gets_the_generators_reason(spark, settings):
    rng = random.Random(7)
    good = [(settings.kafka.transactions.name, json.dumps(SAMPLES["transactions"]).encode())]
    bad = []
    for kind in MALFORMED_KINDS:
        for key in ("transactions", "product_views", "cart_events"):
            if applicable(kind, key):
                _, _, value = corrupt((key, b"k", json.dumps(SAMPLES[key]).encode()), kind, rng)
                bad.append((getattr(settings.kafka, key).name, value))
    bad.append((settings.kafka.transactions.name, b"\xff\x00 not utf-8"))
    checked = checked_records(kafka_frame(spark, good + bad), settings, ["transactions", "product_views", "cart_events"]).cache()

    parsed = valid_events(checked, settings, "transactions").collect()
    assert len(parsed) == 1 and parsed[0]["total_amount"] == 419.97 and parsed[0]["items"][1]["quantity"] == 1
    assert parsed[0]["kafka_topic"] == settings.kafka.transactions.name

    letters = dead_letter_rows(checked, "tests").orderBy("kafka_offset").collect()
    assert len(letters) == len(bad)
    contracts = {settings.kafka.transactions.name: Transaction}
    for letter, (topic, value) in zip(letters, bad, strict=True):
        assert letter["stage"] == "tests" and letter["source_topic"] == topic and bytes(letter["payload"]) == value
        assert letter["reason"]  # the native check's short reason; pydantic's replaces it when written:
        if topic in contracts:
            explained = explain_rejection(settings, topic, value, letter["kafka_timestamp"], letter["reason"])
            assert explained == validate_payload(contracts[topic], value)
    assert dead_letter_payload(b"\xff\x00 not utf-8") == "\ufffd\ufffd not utf-8"
