"""Event contracts: the one definition of every message on GlobalMart's Kafka topics.

The generator validates each event against these models before sending it; the streaming
and batch jobs read the same definitions (Spark schemas are derived from them). A change
that is not backward compatible bumps ``SCHEMA_VERSION``; the JSON Schema export in
``schemas/`` is regenerated with ``globalmart schemas export`` (a unit test checks it is current).

Money is in US dollars with two decimals; times are timezone-aware UTC.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema, ValidationError, model_validator
from pydantic_core import core_schema

from globalmart.settings import PROJECT_ROOT, get_settings

SCHEMA_VERSION = 1
SCHEMAS_DIR = PROJECT_ROOT / "schemas"

_catalog = get_settings().catalog
Country = Literal[tuple(_catalog.countries)]  # type: ignore[valid-type]
PaymentMethod = Literal[tuple(_catalog.payment_methods)]  # type: ignore[valid-type]

# checked inside pydantic-core (a Python validator would cost a microsecond per event)
UtcDatetime = Annotated[datetime, GetPydanticSchema(lambda _type, _handler: core_schema.datetime_schema(tz_constraint=0))]
Id = Annotated[str, Field(min_length=1, max_length=64)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
CENT = 0.01


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_time: UtcDatetime = Field(description="when it happened, UTC")


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    product_id: Id
    category: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_price: Money


class Transaction(Event):
    """A completed purchase; ``total_amount`` is the sum of its lines."""

    transaction_id: Id
    user_id: Id
    session_id: Id
    country: Country
    payment_method: PaymentMethod
    items: list[LineItem] = Field(min_length=1)
    total_amount: Money

    @model_validator(mode="after")
    def _total_is_sum_of_lines(self):
        lines = sum(item.quantity * item.unit_price for item in self.items)
        if abs(lines - self.total_amount) >= CENT:
            raise ValueError(f"total_amount {self.total_amount:.2f} differs from the sum of the lines {lines:.2f}")
        return self


class ProductView(Event):
    """A shopper looking at products: a product page view, or a search/filter/compare leading to one."""

    event_id: Id
    user_id: Id
    session_id: Id
    country: Country
    product_id: Id
    category: str = Field(min_length=1)
    action: Literal["view", "search", "filter", "compare"]
    duration_seconds: int = Field(ge=0, le=3600)
    search_query: str | None = None


class CartEvent(Event):
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
    category: str | None = None
    unit_price: Money | None = None
    quantity: int = Field(ge=0)
    cart_value: Money | None = None

    @model_validator(mode="after")
    def _product_unless_checkout(self):
        if self.action == "checkout":
            if self.cart_value is None:
                raise ValueError("checkout needs cart_value")
        elif self.product_id is None or self.category is None or self.unit_price is None:
            raise ValueError(f"{self.action} needs product_id, category and unit_price")
        return self


class InventoryEvent(Event):
    """Stock arriving at the warehouse (a restock)."""

    event_id: Id
    product_id: Id
    action: Literal["restock"] = "restock"
    quantity: int = Field(ge=1)


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
    source_topic: str
    stage: str = Field(description="who rejected it: generator, or a streaming app's name")
    reason: str
    payload: str = Field(description="the rejected bytes, decoded as UTF-8 with replacement")
    detected_at: UtcDatetime


# settings key of each topic → its contract
TOPIC_CONTRACTS: dict[str, type[BaseModel]] = {
    "transactions": Transaction,
    "product_views": ProductView,
    "cart_events": CartEvent,
    "inventory": InventoryEvent,
    "ground_truth": GroundTruth,
    "dead_letters": DeadLetter,
}


def describe_errors(error: ValidationError) -> str:
    """One line a person can act on: ``items.0.quantity: Input should be greater than or equal to 1``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def validate_payload(model: type[BaseModel], payload: bytes) -> str | None:
    """None when ``payload`` is a valid JSON event for ``model``, otherwise the reason."""
    try:
        model.model_validate_json(payload)
    except ValidationError as exc:
        return describe_errors(exc)
    return None


def json_schemas() -> dict[str, dict]:
    return {name: model.model_json_schema() for name, model in TOPIC_CONTRACTS.items()}


def export_json_schemas(directory: Path = SCHEMAS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.v{SCHEMA_VERSION}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
