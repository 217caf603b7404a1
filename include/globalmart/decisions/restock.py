"""An approved reorder becomes a restock on the ``inventory`` topic: the generator's contract
(:class:`globalmart.events.InventoryEvent`) and producer (:class:`KafkaPublisher`: validated
just before sending, an invalid event dead-lettered with the reason, idempotent ``acks=all``).

The event id is the decision's, so a retried task that sends it again changes no stock: the
inventory tracker counts one restock per event id.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson

from globalmart.events import InventoryEvent
from globalmart.generator.publisher import KafkaPublisher, RunReport
from globalmart.settings import Settings

EVENT_ID_PREFIX = "decision:"
MAX_ID_LENGTH = 64  # of every id in the event contracts


class RestockNotSent(RuntimeError):
    pass


def restock_event_id(decision_id: str) -> str:
    """``decision:<decision id>``, or of its hash when that would not fit an id (64 characters)."""
    event_id = f"{EVENT_ID_PREFIX}{decision_id}"
    if len(event_id) > MAX_ID_LENGTH:
        event_id = f"{EVENT_ID_PREFIX}{hashlib.sha256(decision_id.encode()).hexdigest()[:40]}"
    return event_id


def restock_event(decision_id: str, product_id: str, quantity: int, at: datetime) -> InventoryEvent:
    return InventoryEvent(event_time=at.astimezone(UTC), event_id=restock_event_id(decision_id),
                          product_id=product_id, quantity=quantity)


def _utc_ms(moment: datetime) -> str:
    """The generator's spelling of a time: milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def publish_restock(settings: Settings, event: InventoryEvent) -> None:
    """Send ``event`` to the inventory topic and wait for the broker's acknowledgement."""
    report = RunReport(seed=0, tag="restock_decision", mode="decision",
                       started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    publisher = KafkaPublisher(settings, report)
    payload = orjson.dumps({**event.model_dump(mode="json"), "event_time": _utc_ms(event.event_time)})
    publisher.publish([("inventory", event.product_id, payload)])
    publisher.flush()
    if report.dead_letters:
        raise RestockNotSent(f"restock {event.event_id} broke the inventory contract and was dead-lettered: "
                             f"{dict(report.dead_letter_reasons)}")
    if not report.ok:
        raise RestockNotSent(f"restock {event.event_id} was not delivered: {report.delivery_errors or report.undelivered}")
