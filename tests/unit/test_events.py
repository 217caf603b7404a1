"""Event contracts: round trips, the JSON Schema export, and a clear reason for each defect."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from globalmart.events import (
    SCHEMAS_DIR,
    TOPIC_CONTRACTS,
    CartEvent,
    GroundTruth,
    InventoryEvent,
    ProductView,
    Transaction,
    json_schemas,
    validate_payload,
)
from globalmart.generator.malformed import MALFORMED_KINDS, TARGET_TOPICS, applicable, corrupt

# an hour ago: event times must be plausible for when a record is received (now, by default)
T = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
SAMPLES = {
    "transactions": {
        "transaction_id": "T-1", "user_id": "U00000001", "session_id": "S-1", "event_time": T, "country": "UK",
        "payment_method": "paypal", "total_amount": 419.97,
        "items": [
            {"product_id": "P000001", "category": "Books > Fiction", "quantity": 2, "unit_price": 199.99},
            {"product_id": "P000002", "category": "Books > Fiction", "quantity": 1, "unit_price": 19.99},
        ],
    },
    "product_views": {
        "event_id": "E-1", "user_id": "U00000001", "session_id": "S-1", "event_time": T, "country": "USA",
        "product_id": "P000001", "category": "Books > Fiction", "action": "search", "duration_seconds": 12,
        "search_query": "best fiction",
    },
    "cart_events": {
        "event_id": "E-2", "user_id": "U00000001", "session_id": "S-1", "event_time": T, "country": "USA",
        "action": "add", "product_id": "P000001", "category": "Books > Fiction", "unit_price": 19.99, "quantity": 1,
    },
    "inventory": {"event_id": "E-3", "event_time": T, "product_id": "P000001", "quantity": 50},
}


@pytest.mark.parametrize("topic", SAMPLES)
def test_events_round_trip(topic):
    model = TOPIC_CONTRACTS[topic]
    event = model.model_validate_json(json.dumps(SAMPLES[topic]))
    again = model.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.event_time.utcoffset().total_seconds() == 0


def test_exported_json_schemas_are_current():
    for name, schema in json_schemas().items():
        path = SCHEMAS_DIR / f"{name}.v1.schema.json"
        assert path.exists(), f"run `globalmart schemas export` ({path} missing)"
        assert json.loads(path.read_text()) == schema, f"{path} is stale: run `globalmart schemas export`"


def test_schema_lists_the_allowed_countries():
    schema = Transaction.model_json_schema()
    assert schema["properties"]["country"]["enum"] == ["USA", "UK", "Canada", "Germany", "France"]


EXPECTED_REASON = {
    "broken_json": "Invalid JSON",
    "missing_field": "Field required",
    "wrong_type": "Input should be a valid",
    "negative_amount": "greater than or equal to 0",
    "bad_total": "differs from the sum of the lines",
    "unknown_country": "Input should be 'USA'",
}


@pytest.mark.parametrize(
    ("kind", "topic"),
    [(kind, topic) for kind in MALFORMED_KINDS for topic in TARGET_TOPICS if applicable(kind, topic)],
)
def test_each_defect_is_rejected_with_its_reason(kind, topic):
    message = (topic, "U00000001", json.dumps(SAMPLES[topic]).encode())
    assert validate_payload(TOPIC_CONTRACTS[topic], message[2]) is None
    _, _, broken = corrupt(message, kind, random.Random(1))
    reason = validate_payload(TOPIC_CONTRACTS[topic], broken)
    assert reason is not None and EXPECTED_REASON[kind] in reason, reason


def test_rules_beyond_types():
    with pytest.raises(ValueError, match="RFC 3339 time in UTC"):
        ProductView.model_validate_json(json.dumps({**SAMPLES["product_views"], "event_time": T.replace("Z", "+01:00")}))
    with pytest.raises(ValueError, match="checkout needs cart_value"):
        CartEvent.model_validate_json(json.dumps({**SAMPLES["cart_events"], "action": "checkout"}))
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        InventoryEvent.model_validate_json(json.dumps({**SAMPLES["inventory"], "quantity": 0}))
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ProductView.model_validate_json(json.dumps({**SAMPLES["product_views"], "price": 1}))
    with pytest.raises(ValueError, match="kind"):
        GroundTruth.model_validate_json(json.dumps(
            {"record_id": "G-1", "kind": "fraud", "user_id": "U1", "session_id": "S-1", "event_time": T,
             "first_event_time": T, "detail": "x"}
        ))
