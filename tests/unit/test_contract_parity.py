"""The native contract check (Spark SQL generated from the pydantic models) and pydantic agree.

Both see the same records: the generator's own output, every malformed kind it can inject, the
hostile records of the robustness fuzz, systematic mutations of every field of every topic
(deleted, null, each JSON type, each bound and one step past it, lengths, control characters,
time formats and the edges of the time window, duplicate and unknown keys, trailing content,
encodings), and hypothesis-drawn random mutations. For each record the verdict (valid, a
ClockTick, or rejected) must be the same, and a valid record must parse to the same values.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from globalmart.events import MAX_EVENT_AGE, MAX_EVENT_LEAD, TOPIC_CONTRACTS, check_payload
from globalmart.generator.catalog import get_catalog
from globalmart.generator.malformed import MALFORMED_KINDS, applicable, corrupt
from globalmart.generator.traffic import TrafficConfig, TrafficStream
from globalmart.settings import get_settings
from globalmart.streaming.contracts import checked_records, valid_events
from globalmart.streaming.native_contract import ContractTranslationError, java_pattern, native_check
from tests.hostile_records import EVENT_TOPICS, hostile_sample

BOUNDS = get_settings().contracts
# the broker's append time of every mutated record: Kafka timestamps have millisecond precision
RECEIVED = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)


def iso(moment: datetime, timespec: str = "microseconds") -> str:
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


SAMPLES = {
    "transactions": {
        "schema_version": 1, "event_time": iso(RECEIVED - timedelta(seconds=3)), "transaction_id": "T-1",
        "user_id": "U00000001", "session_id": "S-1", "country": "UK", "payment_method": "paypal",
        "items": [{"product_id": "P000001", "category": "Books > Fiction", "quantity": 2, "unit_price": 199.99},
                  {"product_id": "P000002", "category": "Books > Fiction", "quantity": 1, "unit_price": 19.99}],
        "total_amount": 419.97,
    },
    "product_views": {
        "event_id": "E-1", "user_id": "U00000001", "session_id": "S-1", "event_time": iso(RECEIVED), "country": "USA",
        "product_id": "P000001", "category": "Books > Fiction", "action": "search", "duration_seconds": 12,
        "search_query": "best fiction",
    },
    "cart_events": {
        "event_id": "E-2", "user_id": "U00000001", "session_id": "S-1", "event_time": iso(RECEIVED), "country": "USA",
        "action": "add", "product_id": "P000001", "category": "Books > Fiction", "unit_price": 19.99, "quantity": 1,
    },
    "inventory": {"event_id": "E-3", "event_time": iso(RECEIVED), "product_id": "P000001", "quantity": 50},
}
TICK = {"schema_version": 1, "event_time": iso(RECEIVED), "tick_id": "clock_tick:transactions:0:1764583200123"}

# every JSON type, and the values numbers and texts break on
ANY_VALUE = [None, True, False, 0, 1, -1, 1.0, 1.5, -0.0, "", "x", "1", [], {}, [1], {"a": 1}, 2**31, 2**53 + 1, 2**63,
             10**30, 1e308, 0.1, "🙂", "a\u2028b", "a\x00b", "a\x7fb", "a\x85b", "\t", " ", "Z" * 300]
RAW_NUMBERS = ["1e400", "-1e400", "1E2", "1.0", "1.00000000000000001", "0.30000000000000004441", "99999999999999999.99",
               "1e-400", "-0", "100000.00000000001", "999999.99999999999", "12345678901234567890123456789012345678901"]
TIME_TEXTS = [
    "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.123Z", "2026-12-01T10:00:00.123456Z", "2026-12-01T10:00:00.1234567Z",
    "2026-12-01T10:00:00.123456789Z", "2026-12-01T10:00:00.1234567891Z", "2026-12-01T10:00:00+00:00",
    "2026-12-01T10:00:00-00:00", "2026-12-01 10:00:00Z", "2026-12-01t10:00:00z", "2026-12-01T10:00Z",
    "2026-12-01T10:00:00", "2026-12-01T10:00:00+01:00", "2026-12-01T10:00:00+0000", "2026-12-01T10:00:00,5Z",
    "2026-12-01T10:00:60Z", "2026-12-01T24:00:00Z", "2026-12-01T23:60:00Z", "2026-02-29T10:00:00Z", "2026-13-01T10:00:00Z",
    "2026-12-32T10:00:00Z", "2026-12-00T10:00:00Z", "0000-12-01T10:00:00Z", "1764583200", "2026-12-01", " 2026-12-01T10:00:00Z",
    "2026-12-01T10:00:00Z ", "2026-12-01T10:00:00.Z", "２026-12-01T10:00:00Z", "2026-12-01T10:00:00Z\n",
]


def window_edges() -> list[str]:
    """Times on both edges of the window the contract accepts around the broker's time."""
    edges = []
    for base in (RECEIVED + MAX_EVENT_LEAD, RECEIVED - MAX_EVENT_AGE):
        for step in (-1, 0, 1):
            edges.append(iso(base + timedelta(microseconds=step)))
        edges.append(iso(base + timedelta(microseconds=1), "microseconds").replace("Z", "9Z"))  # a 7th digit, truncated
    return edges


def splice(event: dict, key: str, raw: str) -> bytes:
    """``event`` with ``key``'s value replaced by the raw JSON text ``raw``."""
    marker = "__splice__"
    return json.dumps(event | {key: marker}).replace(f'"{marker}"', raw).encode()


def field_mutations(event: dict, limits: dict[str, tuple]) -> list[bytes]:
    """Each field of ``event`` deleted, null, every JSON type, each raw number, on and past its bounds."""
    out = []
    for key, value in event.items():
        out.append(json.dumps({k: v for k, v in event.items() if k != key}).encode())
        out += [json.dumps(event | {key: other}, ensure_ascii=False).encode() for other in ANY_VALUE]
        out += [splice(event, key, raw) for raw in RAW_NUMBERS]
        low, high = limits.get(key, (None, None))
        for edge in (low, high):
            if isinstance(edge, int):
                out += [json.dumps(event | {key: edge + step}).encode() for step in (-1, 0, 1)]
                out.append(json.dumps(event | {key: float(edge)}).encode())
            elif isinstance(edge, float):
                out += [json.dumps(event | {key: edge + step}).encode() for step in (-0.01, 0.0, 0.01, 1e-9)]
        if isinstance(value, str) and key != "event_time":
            for length in (63, 64, 65, 255, 256, 257):
                out.append(json.dumps(event | {key: "é" * length}, ensure_ascii=False).encode())
            out += [json.dumps(event | {key: value + chr(code)}).encode() for code in (0, 9, 10, 0x1F, 0x7F, 0x80, 0x9F, 0xA0)]
    out += [json.dumps(event | {"event_time": text}).encode() for text in TIME_TEXTS + window_edges()]
    out += [json.dumps(event | {"discount": 0.5}).encode(), json.dumps(event | {"Event_time": event["event_time"]}).encode()]
    return out


def document_mutations(event: dict) -> list[bytes]:
    """The same event as text: duplicate keys, escaped key names, whitespace, trailing content, encodings."""
    text = json.dumps(event)
    first_key = next(iter(event))
    out = [
        text.encode() + suffix for suffix in (b" ", b"\n", b"\r\n\t", b"x", b"}", b"{}", b"[]", b"\xc2\xa0", b"\x00", b",")
    ] + [prefix + text.encode() for prefix in (b" ", b"\n", b"\xef\xbb\xbf", b"[", b"\x00")]
    out += [text.encode()[:cut] for cut in (1, len(text) // 3, len(text) - 1)]
    out += [
        text.replace("{", '{"%s": "dup", ' % first_key, 1).encode(),  # an invalid first, the valid value last
        text[:-1].encode() + b', "%s": "dup"}' % first_key.encode(),  # the valid first, an invalid last
        text.replace(f'"{first_key}"', '"\\u%04x%s"' % (ord(first_key[0]), first_key[1:]), 1).encode(),
        text.replace('"', '"\\ud800', 1).encode(), text.replace(": ", ":\t", 1).encode(),
        text.encode().replace(b'"', b'"\xff', 1), text.replace('"', "'").encode(), f"[{text}]".encode(),
        json.dumps(event, indent=2).encode(), json.dumps(event, ensure_ascii=False).encode("utf-16"),
    ]
    return out


def limits_of(topic: str) -> dict[str, tuple]:
    b = BOUNDS
    return {
        "transactions": {"total_amount": (0.0, b.max_order_value)},
        "product_views": {"duration_seconds": (0, 3600)},
        "cart_events": {"quantity": (0, b.max_cart_units), "unit_price": (0.0, b.max_unit_price), "cart_value": (0.0, b.max_order_value)},
        "inventory": {"quantity": (1, b.max_restock_quantity)},
    }[topic]


def line_mutations(event: dict) -> list[bytes]:
    """A transaction's lines: each line field mutated, many lines, totals a hair from a cent off."""
    line = event["items"][0]
    limits = {"quantity": (1, BOUNDS.max_line_quantity), "unit_price": (0.0, BOUNDS.max_unit_price)}
    out = []
    for payload in field_mutations({k: v for k, v in line.items()} | {"event_time": event["event_time"]}, limits):
        mutated = orjson.loads(payload) if payload[:1] == b"{" and _parses(payload) else None
        if mutated is not None:
            mutated.pop("event_time", None)
            out.append(json.dumps(event | {"items": [mutated, *event["items"][1:]]}, ensure_ascii=False).encode())
    lines = sum(item["quantity"] * item["unit_price"] for item in event["items"])
    out += [json.dumps(event | {"total_amount": lines + delta}).encode()
            for delta in (0.0099, -0.0099, 0.01, -0.01, 0.0100001, 0.00999999999)]
    out += [json.dumps(event | {"items": [line] * count, "total_amount": line["quantity"] * line["unit_price"] * count}).encode()
            for count in (0, BOUNDS.max_lines, BOUNDS.max_lines + 1)]
    out += [json.dumps(event | {"items": line}).encode(), json.dumps(event | {"items": [[line]]}).encode()]
    return out


def _parses(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
        return True
    except orjson.JSONDecodeError:
        return False


def cart_rule_mutations(event: dict) -> list[bytes]:
    checkout = event | {"action": "checkout", "product_id": None, "category": None, "unit_price": None, "cart_value": 19.99}
    return [json.dumps(record).encode() for record in (
        checkout, checkout | {"cart_value": None}, {k: v for k, v in checkout.items() if k != "cart_value"},
        event | {"product_id": None}, event | {"category": None}, event | {"unit_price": None}, event | {"action": "remove"},
    )]


def tick_mutations() -> list[bytes]:
    return [json.dumps(tick).encode() for tick in (
        TICK, {k: v for k, v in TICK.items() if k != "schema_version"}, TICK | {"tick_id": ""}, TICK | {"extra": 1},
        TICK | {"event_time": iso(RECEIVED + timedelta(days=2))}, TICK | {"tick_id": 7}, {"tick_id": "t"},
    )]


def generator_output(count_per_topic: int) -> list[tuple[str, bytes, datetime]]:
    """Events as the generator renders them, each received when it happened."""
    settings = get_settings()
    catalog_settings = settings.catalog.model_copy(update={"users": 100_000, "products": 10_000})
    small = settings.model_copy(update={"catalog": catalog_settings})
    traffic = TrafficStream(small, TrafficConfig(mode="backfill", end_date=RECEIVED.date(), seed=11, daily_transactions=20_000),
                            get_catalog(small.catalog, small.generator))
    counts = dict.fromkeys(EVENT_TOPICS, 0)
    out = []
    for batch in traffic:
        for topic, _key, value in batch.events:
            if topic in counts and counts[topic] < count_per_topic:
                counts[topic] += 1
                received = datetime.fromisoformat(orjson.loads(value)["event_time"].replace("Z", "+00:00"))
                out.append((topic, value, received.replace(microsecond=received.microsecond // 1000 * 1000)))
        if min(counts[topic] for topic in ("transactions", "product_views", "cart_events")) >= count_per_topic:
            break
    return out


def systematic_records() -> list[tuple[str, bytes, datetime]]:
    records = generator_output(250)
    rng = random.Random(5)
    for topic in EVENT_TOPICS:
        sample = SAMPLES[topic]
        payloads = [json.dumps(sample).encode(), *field_mutations(sample, limits_of(topic)), *document_mutations(sample),
                    *tick_mutations()]
        if topic == "transactions":
            payloads += line_mutations(sample)
        if topic == "cart_events":
            payloads += cart_rule_mutations(sample)
        for kind in MALFORMED_KINDS:
            if applicable(kind, topic):
                payloads.append(corrupt((topic, b"k", json.dumps(sample).encode()), kind, rng)[2])
        payloads += [payload for _class, payload in hostile_sample(topic, RECEIVED, per_class=25, seed=3)]
        records += [(topic, payload, RECEIVED) for payload in payloads]
    return records


def pydantic_verdicts(records) -> list[tuple[bool, bool]]:
    """(valid, tick) of each record by pydantic, as the generator's check sees it."""
    verdicts = []
    for topic, payload, received in records:
        reason, tick = check_payload(TOPIC_CONTRACTS[topic], payload, received)
        verdicts.append((reason is None, tick))
    return verdicts


def natively(settings):
    """The settings with the native check on (``streaming.native_contract_check``)."""
    return settings.model_copy(update={"streaming": settings.streaming.model_copy(update={"native_contract_check": True})})


def kafka_records(spark, settings, records):
    """The records as a Kafka source gives them, numbered by their offset."""
    rows = [(getattr(settings.kafka, topic).name, payload, 0, offset, received)
            for offset, (topic, payload, received) in enumerate(records)]
    return spark.createDataFrame(rows, "topic string, value binary, partition int, offset long, timestamp timestamp")


def native_verdicts(spark, settings, records):
    """(valid, tick) of each record by the native check, and the checked frame."""
    checked = checked_records(kafka_records(spark, settings, records), natively(settings), list(EVENT_TOPICS)).cache()
    verdicts = {row.kafka_offset: (row.violation is None, row.tick)
                for row in checked.select("kafka_offset", "violation", "tick").collect()}
    return [verdicts[offset] for offset in range(len(records))], checked


def assert_same_verdicts(spark, settings, records) -> None:
    native, checked = native_verdicts(spark, settings, records)
    expected = pydantic_verdicts(records)
    disagreements = [(topic, payload[:300], exp, got) for (topic, payload, _), exp, got in zip(records, expected, native, strict=True)
                     if exp != got]
    checked.unpersist()
    assert not disagreements, f"{len(disagreements)} of {len(records)} records judged differently (pydantic, native): {disagreements[:10]}"


def test_native_and_pydantic_verdicts_agree_on_every_class_of_record(spark, settings):
    records = systematic_records()
    native, checked = native_verdicts(spark, settings, records)
    expected = pydantic_verdicts(records)
    disagreements = [(topic, payload[:300], exp, got) for (topic, payload, _), exp, got in zip(records, expected, native, strict=True)
                     if exp != got]
    assert not disagreements, f"{len(disagreements)} of {len(records)} records judged differently (pydantic, native): {disagreements[:10]}"
    valid = sum(ok for ok, _ in expected)
    ticks = sum(tick for _, tick in expected)
    print(f"\nparity: {len(records)} records, {valid} valid ({ticks} ticks), {len(records) - valid} rejected, 0 disagreements")
    assert valid > 1000 and len(records) - valid > 1000 and ticks >= len(EVENT_TOPICS)

    # a valid record parses to the values pydantic reads, time to the microsecond; read as a query
    # reads it (no cache between the check and the parse: Spark fuses them into one stage)
    checked.unpersist()
    frame = kafka_records(spark, settings, records)
    for topic in EVENT_TOPICS:
        model = TOPIC_CONTRACTS[topic]
        parsed = valid_events(checked_records(frame, natively(settings), [topic]), settings, topic)
        times = [name for name, field in model.model_fields.items() if field.annotation is datetime]
        rows = parsed.select("*", *(F.unix_micros(name).alias(f"{name}__micros") for name in times)).collect()
        by_offset = {row.kafka_offset: row.asDict(recursive=True) for row in rows}
        for offset, (record_topic, payload, received) in enumerate(records):
            if record_topic != topic or not expected[offset][0] or expected[offset][1]:
                continue
            want = model.model_validate_json(payload, context={"received_at": received}).model_dump()
            got = by_offset.pop(offset)
            for name in times:
                assert got[f"{name}__micros"] == (want[name] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
            assert {k: got[k] for k in want if k not in times} == {k: v for k, v in want.items() if k not in times}
        assert not by_offset, f"{topic}: the native check passed records pydantic did not"


@st.composite
def random_mutation(draw):
    """A sample event with one random change: a value replaced by any JSON, a key added or removed,
    or a piece of its text replaced by random characters."""
    topic = draw(st.sampled_from(EVENT_TOPICS))
    event = json.loads(json.dumps(SAMPLES[topic]))
    target = event["items"][draw(st.integers(0, 1))] if topic == "transactions" and draw(st.booleans()) else event
    key = draw(st.sampled_from(sorted(target)))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=70),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
        max_leaves=5,
    )
    change = draw(st.sampled_from(["value", "drop", "add", "text"]))
    if change == "value":
        target[key] = draw(json_values)
    elif change == "drop":
        del target[key]
    elif change == "add":
        target[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    if change != "text":
        return topic, json.dumps(event, ensure_ascii=draw(st.booleans())).encode()
    text = json.dumps(event).encode()
    start = draw(st.integers(0, len(text) - 1))
    return topic, text[:start] + draw(st.binary(max_size=4)) + text[start + draw(st.integers(0, 4)):]


@hypothesis_settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(random_mutation(), min_size=400, max_size=400))
def test_random_mutations_get_the_same_verdict(spark, settings, mutations):
    assert_same_verdicts(spark, settings, [(topic, payload, RECEIVED) for topic, payload in mutations])


def test_a_contract_the_translation_cannot_mirror_is_refused():
    from pydantic import BaseModel, ConfigDict, model_validator

    class Untwinned(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        amount: float

        @model_validator(mode="after")
        def _positive(self):
            return self

    with pytest.raises(ContractTranslationError, match="no SQL twin"):
        native_check(Untwinned)
    with pytest.raises(ContractTranslationError):
        java_pattern("(?i)^x$")
