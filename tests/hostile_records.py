"""Hostile records for every event topic: hypothesis strategies of malformed, out-of-bounds and
contract-valid extreme payloads, for the contracts' property tests and the fuzz through the real apps.

Each strategy yields ``(record class, payload bytes)``; the class says what the record is meant
to be, the contract (with the broker's timestamp) says what it is.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from globalmart.settings import get_settings

BOUNDS = get_settings().contracts
COUNTRIES = get_settings().catalog.countries
EVENT_TOPICS = ("transactions", "product_views", "cart_events", "inventory")
CLASSES = ("valid", "extreme_valid", "out_of_bounds", "malformed")

CONTROL = [chr(c) for c in (*range(0x00, 0x20), 0x7F, 0x85, 0x9F)]
INT_EXTREMES = [-1, 0, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 10**30]
FLOAT_EXTREMES = [-0.01, 1e15, 1.7976931348623157e308]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


printable_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
)


@st.composite
def base_event(draw, topic: str, now: datetime) -> dict:
    """An ordinary valid event of ``topic``, happening a little before ``now``."""
    when = _iso(now - timedelta(seconds=draw(st.integers(0, 600))))
    user = f"U{draw(st.integers(1, 50)):08d}"
    shopper = {"schema_version": 1, "event_time": when, "user_id": user, "session_id": f"S-{user}",
               "country": draw(st.sampled_from(COUNTRIES))}
    product = f"P{draw(st.integers(1, 30)):06d}"
    category = draw(st.sampled_from(["Books > Fiction", "Electronics > Phones", "Home > Garden"]))
    if topic == "transactions":
        lines = draw(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 5), st.integers(1, 50_000)), min_size=1, max_size=4))
        items = [{"product_id": f"P{p:06d}", "category": category, "quantity": q, "unit_price": cents / 100}
                 for p, q, cents in lines]
        total = round(sum(q * cents for _, q, cents in lines) / 100, 2)
        return shopper | {"transaction_id": _id("T"), "payment_method": "paypal", "items": items, "total_amount": total}
    if topic == "product_views":
        return shopper | {"event_id": _id("V"), "product_id": product, "category": category, "action": "view",
                          "duration_seconds": draw(st.integers(0, 3600)), "search_query": None}
    if topic == "cart_events":
        return shopper | {"event_id": _id("C"), "action": "add", "product_id": product, "category": category,
                          "unit_price": draw(st.integers(1, 10_000)) / 100, "quantity": draw(st.integers(1, 5))}
    return {"schema_version": 1, "event_time": when, "event_id": _id("R"), "product_id": product,
            "action": "restock", "quantity": draw(st.integers(1, 500))}


def _set_quantity(event: dict, topic: str, quantity) -> dict:
    if topic == "transactions":
        items = [dict(event["items"][0], quantity=quantity)]
        total = quantity * items[0]["unit_price"] if isinstance(quantity, int) and 0 < quantity < 10**9 else event["total_amount"]
        return event | {"items": items, "total_amount": round(total, 2)}
    return event | {"quantity": quantity}


@st.composite
def extreme_valid(draw, topic: str, now: datetime) -> dict:
    """Valid by the contract, at its edges: largest values, longest ids, any printable text, oldest and newest times."""
    event = draw(base_event(topic, now))
    edge = draw(st.sampled_from(["max_quantity", "max_price", "long_id", "text", "oldest", "newest", "many_lines"]))
    if edge == "max_quantity":
        limit = {"transactions": BOUNDS.max_line_quantity, "cart_events": BOUNDS.max_cart_units,
                 "inventory": BOUNDS.max_restock_quantity}.get(topic)
        if limit:
            event = _set_quantity(event, topic, limit)
            if topic == "transactions" and event["total_amount"] > BOUNDS.max_order_value:
                event = event | {"items": [dict(event["items"][0], unit_price=1.0)], "total_amount": float(limit)}
    elif edge == "max_price" and topic == "transactions":
        item = {"product_id": event["items"][0]["product_id"], "category": "Luxury", "quantity": 1,
                "unit_price": BOUNDS.max_unit_price}
        event = event | {"items": [item], "total_amount": BOUNDS.max_unit_price}
    elif edge == "long_id":
        key = {"transactions": "transaction_id"}.get(topic, "event_id")
        event = event | {key: (event[key] + "-" + "x" * 64)[:64]}
    elif edge == "text":
        text = draw(printable_text)
        if topic == "transactions":
            event = event | {"items": [dict(item, category=text) for item in event["items"]]}
        elif topic in ("product_views", "cart_events"):
            event = event | {"category": text}
        else:
            event = event | {"product_id": text[:64]}
    elif edge == "oldest":
        event = event | {"event_time": _iso(now - timedelta(hours=BOUNDS.max_event_age_hours) + timedelta(hours=1))}
    elif edge == "newest":
        event = event | {"event_time": _iso(now + timedelta(seconds=BOUNDS.max_event_lead_seconds / 2))}
    elif edge == "many_lines" and topic == "transactions":
        items = [dict(event["items"][0], product_id=f"P{n:06d}", quantity=1, unit_price=1.0) for n in range(BOUNDS.max_lines)]
        event = event | {"items": items, "total_amount": float(BOUNDS.max_lines)}
    return event


@st.composite
def out_of_bounds(draw, topic: str, now: datetime) -> dict:
    """Well-formed JSON of the right shape with one value outside the contract's bounds."""
    event = draw(base_event(topic, now))
    breach = draw(st.sampled_from(["quantity", "control_char", "id_too_long", "far_future", "too_old", "money", "text_too_long"]))
    if breach == "quantity":
        return _set_quantity(event, topic, draw(st.sampled_from(INT_EXTREMES[:1] + INT_EXTREMES[3:])))
    if breach == "control_char":
        key = "product_id" if topic != "transactions" else "user_id"
        return event | {key: "P" + draw(st.sampled_from(CONTROL)) + "1"}
    if breach == "id_too_long":
        key = {"transactions": "transaction_id"}.get(topic, "event_id")
        return event | {key: "X" * 65}
    if breach == "far_future":
        return event | {"event_time": _iso(now + timedelta(days=draw(st.integers(1, 365 * 70))))}
    if breach == "too_old":
        return event | {"event_time": _iso(now - timedelta(hours=BOUNDS.max_event_age_hours + draw(st.integers(2, 10**5))))}
    if breach == "money":
        if topic == "transactions":
            return event | {"total_amount": draw(st.sampled_from(FLOAT_EXTREMES))}
        if topic == "cart_events":
            return event | {"unit_price": draw(st.sampled_from(FLOAT_EXTREMES))}
        return event | {"quantity": -5}
    if topic in ("product_views", "cart_events"):
        return event | {"category": "c" * (BOUNDS.max_text_length + 1)}
    return event | {"schema_version": 2}


@st.composite
def malformed(draw, topic: str, now: datetime) -> bytes:
    """Not the topic's contract at all: broken JSON, invalid UTF-8, wrong types, missing or unknown fields."""
    event = draw(base_event(topic, now))
    kind = draw(st.sampled_from(["broken_json", "not_utf8", "not_object", "wrong_type", "missing", "extra", "nan", "empty"]))
    if kind == "broken_json":
        return json.dumps(event).encode()[: draw(st.integers(1, 20))]
    if kind == "not_utf8":
        return b'{"event_id": "\xff\xfe\x00", "x": 1}'
    if kind == "not_object":
        return draw(st.sampled_from([b"[]", b"null", b"42", b'"text"']))
    if kind == "wrong_type":
        return json.dumps(event | {"event_time": 1_700_000_000}).encode()
    if kind == "missing":
        return json.dumps({k: v for k, v in event.items() if k != "event_time"}).encode()
    if kind == "extra":
        return json.dumps(event | {"discount": 0.5}).encode()
    if kind == "nan":
        return json.dumps(event).replace('"schema_version": 1', '"schema_version": NaN').encode()
    return b""


def class_strategies(topic: str, now: datetime) -> dict:
    """Record class → strategy of (class, payload) of ``topic``."""
    def encoded(name: str, event: dict) -> tuple[str, bytes]:
        return name, json.dumps(event, ensure_ascii=False).encode()

    return {
        "valid": base_event(topic, now).map(lambda event: encoded("valid", event)),
        "extreme_valid": extreme_valid(topic, now).map(lambda event: encoded("extreme_valid", event)),
        "out_of_bounds": out_of_bounds(topic, now).map(lambda event: encoded("out_of_bounds", event)),
        "malformed": malformed(topic, now).map(lambda payload: ("malformed", payload)),
    }


def hostile_record(topic: str, now: datetime):
    """(class, payload) of ``topic``, of any class."""
    return st.sampled_from(CLASSES).flatmap(class_strategies(topic, now).__getitem__)


def hostile_sample(topic: str, now: datetime, per_class: int, seed: int) -> list[tuple[str, bytes]]:
    """About ``per_class`` records of each class for ``topic``, the same for the same ``seed``."""
    return [record for strategy in class_strategies(topic, now).values() for record in sample(strategy, per_class, seed)]


def sample(strategy, count: int, seed: int) -> list:
    """About ``count`` draws of ``strategy``, the same for the same ``seed``: for the fuzz through
    the real apps, where one run of the apps is the expensive part, so one large varied sample is
    sent at once instead of a search one record at a time."""
    drawn = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(value):
        drawn.append(value)

    collect()
    return drawn
