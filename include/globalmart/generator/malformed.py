"""Deliberately broken events, to prove that bad input is caught and dead-lettered with a reason."""

from __future__ import annotations

import random

import orjson

from globalmart.generator.render import Message

MALFORMED_KINDS = ("broken_json", "missing_field", "wrong_type", "negative_amount", "bad_total", "unknown_country")
# topics whose events can be broken (inventory and ground truth are not shopper traffic)
TARGET_TOPICS = ("transactions", "product_views", "cart_events")
_REQUIRED = {"transactions": "user_id", "product_views": "product_id", "cart_events": "session_id"}


def corrupt(message: Message, kind: str, rng: random.Random) -> Message:
    """The same event, broken in the way ``kind`` names (``bad_total`` turns any event into a
    transaction whose total does not add up)."""
    topic, key, value = message
    if kind == "broken_json":
        return topic, key, value[: max(1, len(value) // 2)]
    event = orjson.loads(value)
    if kind == "missing_field":
        event.pop(_REQUIRED[topic])
    elif kind == "wrong_type":
        field = {"transactions": "total_amount", "product_views": "duration_seconds", "cart_events": "quantity"}[topic]
        event[field] = f"{event[field]} units"
    elif kind == "negative_amount":
        if topic == "transactions":
            event["items"][0]["unit_price"] = -abs(event["items"][0]["unit_price"])
            event["total_amount"] = round(sum(i["quantity"] * i["unit_price"] for i in event["items"]), 2)
        elif topic == "product_views":
            event["duration_seconds"] = -event["duration_seconds"] - 1
        else:
            event["quantity"] = -event["quantity"] - 1
    elif kind == "bad_total":
        if topic != "transactions":
            raise ValueError("bad_total applies to transactions only")
        event["total_amount"] = round(event["total_amount"] + rng.choice([-1, 1]) * rng.uniform(1, 50), 2)
    elif kind == "unknown_country":
        event["country"] = "Atlantis"
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; choose from {', '.join(MALFORMED_KINDS)}")
    return topic, key, orjson.dumps(event)


def applicable(kind: str, topic: str) -> bool:
    return topic in TARGET_TOPICS and (kind != "bad_total" or topic == "transactions")
