"""Event contracts: the one definition of every message on GlobalMart's Kafka topics.

The generator validates each event against these models before sending it; the streaming
and batch jobs read the same definitions (Spark schemas are derived from them). A change
that is not backward compatible bumps ``SCHEMA_VERSION``; the JSON Schema export in
``schemas/`` is regenerated with ``globalmart schemas export`` (a unit test checks it is current).

Money is in US dollars with two decimals; times are timezone-aware UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from globalmart.settings import PROJECT_ROOT, get_settings

SCHEMA_VERSION = 1
SCHEMAS_DIR = PROJECT_ROOT / "schemas"

_catalog = get_settings().catalog
_bounds = get_settings().contracts
Country = Literal[tuple(_catalog.countries)]  # type: ignore[valid-type]
PaymentMethod = Literal[tuple(_catalog.payment_methods)]  # type: ignore[valid-type]

# RFC 3339 in UTC, fraction truncated to microseconds: what the generator writes, one format the
# streaming apps' native check parses exactly as pydantic does (an ISO 8601 parser accepts far more)
RFC3339_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-]00:00)$"


def _utc_datetime_schema(_type, _handler) -> core_schema.CoreSchema:
    """A UTC time: in JSON, RFC 3339 text then a datetime (lax: it is text by then); in Python, an
    aware datetime. Checked inside pydantic-core (a Python validator would cost a microsecond per event)."""
    return core_schema.json_or_python_schema(
        json_schema=core_schema.chain_schema(
            [
                core_schema.custom_error_schema(
                    core_schema.str_schema(pattern=RFC3339_UTC), "utc_time",
                    custom_error_message="Input should be an RFC 3339 time in UTC (Z or +00:00), like 2026-12-01T10:00:00.123Z",
                ),
                core_schema.datetime_schema(tz_constraint=0, strict=False),
            ]
        ),
        python_schema=core_schema.datetime_schema(tz_constraint=0),
        metadata={"pydantic_js_functions": [lambda _schema, _handler: {"type": "string", "format": "date-time",
                                                                       "pattern": RFC3339_UTC}]},
    )


UtcDatetime = Annotated[datetime, GetPydanticSchema(_utc_datetime_schema)]
# printable text: PostgreSQL rejects NUL in text, and no control character belongs in an id or a name
PRINTABLE = r"^[^\x00-\x1F\x7F-\x9F]+$"
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
Text = Annotated[str, Field(min_length=1, max_length=_bounds.max_text_length, pattern=PRINTABLE)]
Price = Annotated[float, Field(ge=0, le=_bounds.max_unit_price, allow_inf_nan=False)]
OrderValue = Annotated[float, Field(ge=0, le=_bounds.max_order_value, allow_inf_nan=False)]
Money = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]  # fits numeric(18, 2)
CENT = 0.01
MAX_EVENT_AGE = timedelta(hours=_bounds.max_event_age_hours)
MAX_EVENT_LEAD = timedelta(seconds=_bounds.max_event_lead_seconds)
RECEIVED_AT = "received_at"  # validation context: when the record reached the broker (default: now)


def event_time_problem(event_time: datetime, received_at: datetime) -> str | None:
    """Why ``event_time`` is implausible for a record received at ``received_at`` (None when it is not)."""
    if event_time > received_at + MAX_EVENT_LEAD:
        return (f"event_time {event_time.isoformat()} is more than {MAX_EVENT_LEAD.total_seconds():.0f} s after it was "
                f"received ({received_at.isoformat()})")
    if event_time < received_at - MAX_EVENT_AGE:
        return (f"event_time {event_time.isoformat()} is more than {MAX_EVENT_AGE.total_seconds() / 3600:.0f} h before it "
                f"was received ({received_at.isoformat()})")
    return None


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_time: UtcDatetime = Field(description="when it happened, UTC")


class StreamEvent(Event):
    """An event on a topic the streaming apps read: its time must be plausible for when it was
    received (validation context ``received_at``, the broker's timestamp; now by default). A far
    future time would move every watermark past the real traffic; a very old one could no longer
    be recognised as a duplicate."""

    # SQL twins of the model validators, for the streaming apps' native check
    # (``streaming.native_contract``): validator name → (Spark SQL true when the event passes, the
    # reason); ``{field}`` is a field's parsed value, ``{received_at}`` the broker's timestamp
    SQL_TWINS: ClassVar[dict[str, tuple[str, str]]] = {
        "_plausible_time": (
            f"unix_micros({{event_time}}) - unix_micros({{received_at}}) <= {MAX_EVENT_LEAD // timedelta(microseconds=1)} "
            f"AND unix_micros({{received_at}}) - unix_micros({{event_time}}) <= {MAX_EVENT_AGE // timedelta(microseconds=1)}",
            f"event_time: more than {MAX_EVENT_LEAD.total_seconds():.0f} s after or "
            f"{MAX_EVENT_AGE.total_seconds() / 3600:.0f} h before it was received",
        ),
    }

    @model_validator(mode="after")
    def _plausible_time(self, info: ValidationInfo):
        received_at = (info.context or {}).get(RECEIVED_AT) or datetime.now(UTC)
        problem = event_time_problem(self.event_time, received_at)
        if problem:
            raise ValueError(problem)
        return self


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    product_id: Id
    category: Text
    quantity: int = Field(ge=1, le=_bounds.max_line_quantity)
    unit_price: Price


class Transaction(StreamEvent):
    """A completed purchase; ``total_amount`` is the sum of its lines."""

    transaction_id: Id
    user_id: Id
    session_id: Id
    country: Country
    payment_method: PaymentMethod
    items: list[LineItem] = Field(min_length=1, max_length=_bounds.max_lines)
    total_amount: OrderValue

    SQL_TWINS: ClassVar[dict[str, tuple[str, str]]] = {
        "_total_is_sum_of_lines": (
            f"abs(aggregate({{items}}, 0D, (lines, item) -> lines + item.quantity * item.unit_price) - {{total_amount}}) < {CENT!r}D",
            "total_amount differs from the sum of the lines",
        ),
    }

    @model_validator(mode="after")
    def _total_is_sum_of_lines(self):
        lines = sum(item.quantity * item.unit_price for item in self.items)
        if abs(lines - self.total_amount) >= CENT:
            raise ValueError(f"total_amount {self.total_amount:.2f} differs from the sum of the lines {lines:.2f}")
        return self


class ProductView(StreamEvent):
    """A shopper looking at products: a product page view, or a search/filter/compare leading to one."""

    event_id: Id
    user_id: Id
    session_id: Id
    country: Country
    product_id: Id
    category: Text
    action: Literal["view", "search", "filter", "compare"]
    duration_seconds: int = Field(ge=0, le=3600)
    search_query: Text | None = None


class CartEvent(StreamEvent):
    """A change to a shopping cart.

    ``add``/``remove``: ``quantity`` units of the product added or removed; ``update``: the line's
    new quantity; ``checkout``: the cart is submitted (no product; ``quantity`` is the units in
    the cart and ``cart_value`` its value).
    """

    event_id: Id
    user_id: Id
    session_id: Id
    country: Country
    action: Literal["add", "remove", "update", "checkout"]
    product_id: Id | None = None
    category: Text | None = None
    unit_price: Price | None = None
    quantity: int = Field(ge=0, le=_bounds.max_cart_units)
    cart_value: OrderValue | None = None

    SQL_TWINS: ClassVar[dict[str, tuple[str, str]]] = {
        "_product_unless_checkout": (
            "CASE WHEN {action} = 'checkout' THEN {cart_value} IS NOT NULL "
            "ELSE {product_id} IS NOT NULL AND {category} IS NOT NULL AND {unit_price} IS NOT NULL END",
            "checkout needs cart_value; add, remove and update need product_id, category and unit_price",
        ),
    }

    @model_validator(mode="after")
    def _product_unless_checkout(self):
        if self.action == "checkout":
            if self.cart_value is None:
                raise ValueError("checkout needs cart_value")
        elif self.product_id is None or self.category is None or self.unit_price is None:
            raise ValueError(f"{self.action} needs product_id, category and unit_price")
        return self


class InventoryEvent(StreamEvent):
    """Stock arriving at the warehouse (a restock)."""

    event_id: Id
    product_id: Id
    action: Literal["restock"] = "restock"
    quantity: int = Field(ge=1, le=_bounds.max_restock_quantity)


class ClockTick(StreamEvent):
    """The platform's clock on an event topic's partition while it is quiet (``globalmart ticks``).

    Event-time watermarks move only with event times: without traffic no session would close.
    A tick is valid on every event topic, moves the watermarks of the queries reading it and is
    counted in no mart and archived nowhere."""

    tick_id: Id = Field(description="clock_tick:<topic>:<partition>:<epoch ms>")


AnomalyKind = Literal["high_value", "unusual_quantity", "rapid_fire_count", "rapid_fire_amount"]
TruthKind = Literal["high_value", "unusual_quantity", "rapid_fire_count", "rapid_fire_amount", "cart_abandoned"]


class GroundTruth(Event):
    """What the generator injected, so detection quality can be measured.

    ``event_time`` is when the fact became true: the last transaction of an anomaly, or the
    end of the abandonment timeout after a cart's last activity.
    """

    record_id: Id
    kind: TruthKind
    user_id: Id
    session_id: Id
    transaction_ids: list[Id] = []
    first_event_time: UtcDatetime
    amount: Money | None = Field(None, description="anomaly: sum of its transactions; abandonment: cart value")
    detail: str


class DeadLetter(BaseModel):
    """An event that failed its contract, kept with the reason instead of being lost."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    source_topic: Text
    stage: Text = Field(description="who rejected it: generator, or a streaming app's name")
    reason: str = Field(min_length=1)
    payload: str = Field(description="the rejected bytes, decoded as UTF-8 with replacement")
    detected_at: UtcDatetime


# settings key of each topic → its contract (an event topic also carries the platform's ClockTicks)
TOPIC_CONTRACTS: dict[str, type[BaseModel]] = {
    "transactions": Transaction,
    "product_views": ProductView,
    "cart_events": CartEvent,
    "inventory": InventoryEvent,
    "ground_truth": GroundTruth,
    "dead_letters": DeadLetter,
}


def twins_of(model: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """The SQL twins of ``model``'s validators, its own and its parents'."""
    twins: dict[str, tuple[str, str]] = {}
    for cls in reversed(model.__mro__):
        twins |= cls.__dict__.get("SQL_TWINS", {})
    return twins


def describe_errors(error: ValidationError) -> str:
    """One line a person can act on: ``items.0.quantity: Input should be greater than or equal to 1``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def check_payload(model: type[BaseModel], payload: bytes, received_at: datetime | None = None) -> tuple[str | None, bool]:
    """(None when ``payload`` is valid for ``model``'s topic, otherwise the reason; whether it is a
    ClockTick). ``received_at``: when the broker received it (default: now)."""
    context = {RECEIVED_AT: received_at} if received_at is not None else None
    try:
        model.model_validate_json(payload, context=context)
        return None, False
    except ValidationError as exc:
        reason = describe_errors(exc)
    if issubclass(model, StreamEvent) and b'"tick_id"' in payload:
        try:
            ClockTick.model_validate_json(payload, context=context)
            return None, True
        except ValidationError as exc:
            reason = describe_errors(exc)  # a tick's own fault says more than the event model's
    return reason, False


def validate_payload(model: type[BaseModel], payload: bytes, received_at: datetime | None = None) -> str | None:
    """None when ``payload`` is valid on ``model``'s topic (an event, or a ClockTick), otherwise the reason."""
    return check_payload(model, payload, received_at)[0]


def json_schemas() -> dict[str, dict]:
    models = {**TOPIC_CONTRACTS, "clock_tick": ClockTick}
    return {name: model.model_json_schema() for name, model in models.items()}


def export_json_schemas(directory: Path = SCHEMAS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.v{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
