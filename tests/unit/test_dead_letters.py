"""The replay DAG's form, dead-letter ids and the contract checks a replay runs (no services)."""

import json
from datetime import UTC, datetime

import pytest

from globalmart.dead_letters import DeadLetterId, record_key, request_from_params, validators
from globalmart.settings import Settings


def test_ids_round_trip_and_topic_names_may_hold_colons():
    assert DeadLetterId.parse(" transactions:2:1041 ") == DeadLetterId("transactions", 2, 1041)
    assert str(DeadLetterId.parse("a:b:0:7")) == "a:b:0:7"
    for bad in ("transactions", "transactions:x:1", ":0:1", "t:1:-1"):
        with pytest.raises(ValueError, match="topic:partition:offset"):
            DeadLetterId.parse(bad)


def test_the_form_becomes_a_request():
    request = request_from_params({
        "topic": "transactions", "detected_from": "2026-11-22T10:00:00Z", "detected_to": "2026-11-22T12:00:00+00:00",
        "ids": ["transactions:0:5", " "], "dry_run": False, "limit": 50,
    })
    assert request.source_topic == "transactions"
    assert request.detected_from == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert request.ids == (DeadLetterId("transactions", 0, 5),)
    assert (request.dry_run, request.limit) == (False, 50)
    empty = request_from_params({"topic": None, "ids": [], "dry_run": True, "limit": 1000})
    assert (empty.source_topic, empty.detected_from, empty.ids, empty.dry_run) == (None, None, (), True)


@pytest.mark.parametrize(("params", "message"), [
    ({"detected_from": "2026-11-22T10:00:00"}, "needs a time zone"),
    ({"detected_from": "2026-11-22T12:00:00Z", "detected_to": "2026-11-22T10:00:00Z"}, "is not before"),
    ({"ids": ["nope"]}, "topic:partition:offset"),
])
def test_a_form_that_does_not_fit_is_refused(params, message):
    with pytest.raises(ValueError, match=message):
        request_from_params(params)


def test_every_event_topic_and_the_alerts_topic_can_be_checked_but_not_the_dead_letters_topic():
    settings = Settings()
    checks = validators(settings)
    assert settings.kafka.alerts.name in checks and settings.kafka.transactions.name in checks
    assert settings.kafka.dead_letters.name not in checks
    restock = {"schema_version": 1, "event_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "event_id": "E1", "product_id": "P1",
               "action": "restock", "quantity": 5}
    assert checks[settings.kafka.inventory.name](json.dumps(restock).encode()) is None
    assert "quantity" in checks[settings.kafka.inventory.name](json.dumps(restock | {"quantity": 0}).encode())
    assert checks[settings.kafka.alerts.name](b"{}").startswith("message:")


def test_a_replayed_event_keeps_the_generator_partitioning_key():
    assert record_key(b'{"user_id": "U1", "product_id": "P1"}') == b"U1"
    assert record_key(b'{"product_id": "P1"}') == b"P1"
    assert record_key(b"[1, 2]") is None and record_key(b"{broken") is None
