"""The messages of the ``alerts`` Kafka topic, as the streaming apps publish them.

Every message has the fields of :class:`globalmart.streaming.sink.AlertPublisher` (alert_id,
app, kind, severity, subject, detail, event_time, created_at); ``kind`` says what ``detail``
holds:

- ``stock.low`` / ``stock.critical`` (inventory tracker): a product moved into a worse stock state;
- ``anomaly.<rule>`` (anomaly detector): suspicious transactions of one user;
- ``cart_abandonment.spike`` (sessions): more abandoned carts in an hour than the threshold;
- ``data_quality.<problem>`` (any app): the data contradicts itself or could not be processed
  (a sale below zero stock, records isolated from a failing micro-batch): what, facts, advice.

A message that does not fit raises :class:`MalformedAlert`; the caller dead-letters it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
MAX_REASON_ERRORS = 3  # a dead letter's reason names the first few problems, not all of them


class MalformedAlert(ValueError):
    """A message of the alerts topic that is not a valid alert; ``reason`` says why."""

    def __init__(self, reason: str, payload: bytes | str | None):
        super().__init__(f"malformed alert message: {reason}")
        self.reason = reason
        self.payload = payload


class _Frozen(BaseModel):
    # extra fields are ignored: a producer may add facts without breaking the emails
    model_config = ConfigDict(frozen=True, extra="ignore")


class StockDetail(_Frozen):
    product_id: str = Field(min_length=1)
    stock: int
    state_before: Literal["ok", "low", "critical"]
    state: Literal["low", "critical"]
    threshold: int
    # not in the inventory tracker's message: filled in from the product catalog before rendering
    product_name: str | None = None
    category: str | None = None


class AnomalyDetail(_Frozen):
    anomaly_id: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    country: str
    transaction_ids: list[str] = Field(min_length=1)
    first_event_time: AwareDatetime
    last_event_time: AwareDatetime
    amount: float = Field(ge=0)
    observed: float
    threshold: float
    score: float = Field(ge=0, le=1)
    description: str


class AbandonmentSpikeDetail(_Frozen):
    hour: AwareDatetime
    abandoned_carts_so_far: int = Field(ge=0)
    abandoned_value_so_far: float = Field(ge=0)
    threshold: int


class DataQualityDetail(_Frozen):
    about: str = Field(min_length=1)  # what it concerns (a product, a streaming query): the throttling key
    description: str = Field(min_length=1)
    advice: str = Field(min_length=1)
    facts: dict[str, str | int | float] = {}  # label → value, in reading order


class _Alert(_Frozen):
    family: ClassVar[str]

    alert_id: str = Field(min_length=1)
    app: str = Field(min_length=1)
    severity: Severity
    subject: str
    event_time: AwareDatetime
    created_at: AwareDatetime
    # each alert type's ``subject_key`` is what it is about, for throttling: product, user or hour


class StockAlert(_Alert):
    family: ClassVar[str] = "stock"

    kind: Literal["stock.low", "stock.critical"]
    detail: StockDetail

    @model_validator(mode="after")
    def _state_matches_kind(self):
        if self.kind != f"stock.{self.detail.state}":
            raise ValueError(f"kind {self.kind} does not match detail.state {self.detail.state!r}")
        return self

    @property
    def subject_key(self) -> str:
        return self.detail.product_id

    def with_catalog_facts(self, product_name: str, category: str) -> StockAlert:
        return self.model_copy(update={"detail": self.detail.model_copy(
            update={"product_name": product_name, "category": category})})


class AnomalyAlert(_Alert):
    family: ClassVar[str] = "anomaly"

    kind: str = Field(pattern=r"^anomaly\.[a-z0-9_]+$")
    detail: AnomalyDetail

    @model_validator(mode="after")
    def _rule_matches_kind(self):
        if self.kind != f"anomaly.{self.detail.kind}":
            raise ValueError(f"kind {self.kind} does not match detail.kind {self.detail.kind!r}")
        return self

    @property
    def subject_key(self) -> str:
        return self.detail.user_id


class AbandonmentSpikeAlert(_Alert):
    family: ClassVar[str] = "cart_abandonment"

    kind: Literal["cart_abandonment.spike"]
    detail: AbandonmentSpikeDetail

    @property
    def subject_key(self) -> str:
        return self.detail.hour.astimezone(UTC).isoformat()


class DataQualityAlert(_Alert):
    family: ClassVar[str] = "data_quality"

    kind: str = Field(pattern=r"^data_quality\.[a-z0-9_]+$")
    detail: DataQualityDetail

    @property
    def subject_key(self) -> str:
        return self.detail.about


ALERT_TYPES: tuple[type[_Alert], ...] = (StockAlert, AnomalyAlert, AbandonmentSpikeAlert, DataQualityAlert)


def _family(value) -> str | None:
    """The part of ``kind`` before the dot picks the model (anomaly rules may be added freely)."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind.split(".", 1)[0] if isinstance(kind, str) else None


AlertMessage = Annotated[
    Annotated[StockAlert, Tag(StockAlert.family)]
    | Annotated[AnomalyAlert, Tag(AnomalyAlert.family)]
    | Annotated[AbandonmentSpikeAlert, Tag(AbandonmentSpikeAlert.family)]
    | Annotated[DataQualityAlert, Tag(DataQualityAlert.family)],
    Discriminator(
        _family,
        custom_error_type="unknown_alert_kind",
        custom_error_message=f"kind must be a string starting with one of {', '.join(t.family + '.' for t in ALERT_TYPES)}",
    ),
]
_ALERT = TypeAdapter(AlertMessage)


def parse_alert(payload: bytes | str | None) -> AlertMessage:
    """One message value of the alerts topic (JSON) → its alert; :class:`MalformedAlert` if invalid."""
    if not payload:
        raise MalformedAlert("empty message", payload)
    try:
        return _ALERT.validate_json(payload)
    except ValidationError as error:
        raise MalformedAlert(_reason(error), payload) from error


def _reason(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False)
    tags = {t.family for t in ALERT_TYPES}
    described = []
    for problem in problems[:MAX_REASON_ERRORS]:
        location = problem["loc"]
        if location and location[0] in tags:  # the tagged union prefixes the model's tag: people read field paths
            location = location[1:]
        described.append(f"{'.'.join(map(str, location)) or 'message'}: {problem['msg']}")
    if len(problems) > MAX_REASON_ERRORS:
        described.append(f"and {len(problems) - MAX_REASON_ERRORS} more")
    return "; ".join(described)
