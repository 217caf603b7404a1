"""Property tests of the bounded contracts: whatever arrives, the check answers (never raises), and
everything it accepts fits every store and type it reaches."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from globalmart.events import MAX_EVENT_AGE, MAX_EVENT_LEAD, TOPIC_CONTRACTS, check_payload
from tests.hostile_records import BOUNDS, EVENT_TOPICS, hostile_record

NOW = datetime.now(UTC).replace(microsecond=0)
INT32 = 2**31 - 1


def _numbers_and_texts(value, path=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers_and_texts(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for inner in value:
            yield from _numbers_and_texts(inner, path)
    else:
        yield path, value


def assert_fits_the_stores(topic: str, payload: bytes, received_at: datetime) -> None:
    event = json.loads(payload)
    for path, value in _numbers_and_texts(event):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            assert 0 <= value <= INT32, (path, value)
        elif isinstance(value, float):
            assert 0 <= value <= BOUNDS.max_order_value, (path, value)
        elif isinstance(value, str):
            assert 0 < len(value) <= BOUNDS.max_text_length, path
            assert not any(unicodedata.category(char) == "Cc" for char in value), (path, value)
    moment = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
    assert received_at - MAX_EVENT_AGE <= moment <= received_at + MAX_EVENT_LEAD
    if topic == "transactions":
        assert 1 <= len(event["items"]) <= BOUNDS.max_lines
        assert all(item["quantity"] <= BOUNDS.max_line_quantity for item in event["items"])
        assert all(item["unit_price"] <= BOUNDS.max_unit_price for item in event["items"])


@pytest.mark.parametrize("topic", EVENT_TOPICS)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_record_gets_a_verdict_and_what_passes_fits_the_stores(topic, data):
    kind, payload = data.draw(hostile_record(topic, NOW))
    reason, tick = check_payload(TOPIC_CONTRACTS[topic], payload, received_at=NOW)
    assert not tick
    if kind in ("valid", "extreme_valid"):
        assert reason is None, (kind, payload, reason)
        assert_fits_the_stores(topic, payload, NOW)
    else:
        assert reason, (kind, payload)


def test_event_time_window_is_relative_to_when_the_record_was_received():
    payload = {"event_id": "R-1", "product_id": "P1", "quantity": 1, "schema_version": 1}
    model = TOPIC_CONTRACTS["inventory"]

    def verdict(event_time: datetime, received_at: datetime):
        body = json.dumps(payload | {"event_time": event_time.isoformat().replace("+00:00", "Z")}).encode()
        return check_payload(model, body, received_at)[0]

    assert verdict(NOW, NOW) is None
    assert "after it was received" in verdict(NOW + MAX_EVENT_LEAD + timedelta(seconds=1), NOW)
    assert "before it was received" in verdict(NOW - MAX_EVENT_AGE - timedelta(seconds=1), NOW)
    # a year-2099 purchase is refused however it is received
    assert "after it was received" in verdict(datetime(2099, 1, 1, tzinfo=UTC), NOW)
    # an old event received long ago (a backfill at its time) was plausible then
    assert verdict(NOW - timedelta(days=30), NOW - timedelta(days=30)) is None


def test_clock_ticks_are_valid_on_every_event_topic_and_nowhere_else():
    tick = json.dumps({"schema_version": 1, "event_time": NOW.isoformat().replace("+00:00", "Z"),
                       "tick_id": "clock_tick:transactions:0:1"}).encode()
    for topic in EVENT_TOPICS:
        assert check_payload(TOPIC_CONTRACTS[topic], tick, NOW) == (None, True)
    reason, tick_seen = check_payload(TOPIC_CONTRACTS["ground_truth"], tick, NOW)
    assert reason and not tick_seen
    far = tick.replace(b'"20', b'"29', 1)
    reason, tick_seen = check_payload(TOPIC_CONTRACTS["transactions"], far, NOW)
    assert "after it was received" in reason and not tick_seen
