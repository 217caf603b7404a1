"""Which alerts open a decision, what a reorder should be, what an answer means: pure rules.

A pure function of the alerts, the decisions already there and the time, so that a replay of
the same alerts decides the same way (the alert notifier calls it under its lock). The rules:

1. A critical-stock alert asks for a **restock** decision about its product; an anomaly alert
   scoring at least ``decisions.fraud_review_score`` asks for a **fraud** review of its anomaly.
   Every other alert asks for nothing.
2. A decision's id is derived from its kind, subject and the alert that opened it: the same
   alert seen again (a replay after a crash) finds its decision and changes nothing.
3. One open decision per product or anomaly: an alert about a subject with an open decision
   joins it (its email links to it).
4. Throttle: a subject whose last decision closed less than ``decisions.throttle_minutes`` ago
   gets no new one.
5. At most ``decisions.max_open`` decisions are open at once; an alert beyond that opens none.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from globalmart.alerting.messages import AlertMessage, AnomalyAlert, StockAlert
from globalmart.settings import Settings

RESTOCK = "restock"
FRAUD = "fraud"
Subject = tuple[str, str]  # (kind, product_id or anomaly_id)

# the answers a person picks on the Required Actions page, and the outcome each one records
REORDER_OPTION, IGNORE_OPTION = "Reorder", "Ignore"
CONFIRM_OPTION, LEGITIMATE_OPTION, HOLD_OPTION = "Confirm fraud", "Mark legitimate", "Hold customer"
OPTIONS: dict[str, dict[str, str]] = {
    RESTOCK: {REORDER_OPTION: "reorder", IGNORE_OPTION: "ignore"},
    FRAUD: {CONFIRM_OPTION: "confirm_fraud", LEGITIMATE_OPTION: "legitimate", HOLD_OPTION: "hold_customer"},
}
QUANTITY_PARAM = "quantity"
NOTE_PARAM = "note"
DECIDE_TASK = "decide"  # the task of each decision DAG that waits for the person
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~+-]")
MAX_SUBJECT_IN_ID = 100


class Opening(StrEnum):
    OPENED = "opened"
    JOINED = "joined"  # a decision about the subject is open: the alert joins it
    DUPLICATE = "duplicate"  # the alert opened its decision before
    THROTTLED = "throttled"
    CAPPED = "capped"


@dataclass(frozen=True)
class DecisionState:
    """What the store holds about the subjects of one poll's alerts."""

    open_by_subject: Mapping[Subject, str] = field(default_factory=dict)  # → decision_id
    last_closed: Mapping[Subject, datetime] = field(default_factory=dict)
    known_ids: frozenset[str] = frozenset()  # decision ids already recorded (open or closed)
    open_count: int = 0


@dataclass(frozen=True)
class Step:
    alert: AlertMessage
    kind: str
    subject_key: str
    decision_id: str | None  # the decision the alert opened, joined or opened before; None: none
    opening: Opening


def subject_of(alert: AlertMessage, settings: Settings) -> Subject | None:
    """(kind, subject key) of the decision ``alert`` asks for; None when it asks for none."""
    if isinstance(alert, StockAlert) and alert.detail.state == "critical":
        return RESTOCK, alert.detail.product_id
    if isinstance(alert, AnomalyAlert) and alert.detail.score >= settings.decisions.fraud_review_score:
        return FRAUD, alert.detail.anomaly_id
    return None


def decision_id(kind: str, subject_key: str, alert_id: str) -> str:
    """Deterministic, and a valid Airflow run id: ``restock__<product>__<hash of the alert>``."""
    safe = _RUN_ID_UNSAFE.sub("_", subject_key)[:MAX_SUBJECT_IN_ID]
    digest = hashlib.sha256(f"{kind}\0{subject_key}\0{alert_id}".encode()).hexdigest()[:12]
    return f"{kind}__{safe}__{digest}"


def plan_openings(alerts: Sequence[AlertMessage], state: DecisionState, now: datetime,
                  settings: Settings) -> list[Step]:
    """What each alert that asks for a decision does, in event-time order."""
    throttle = timedelta(minutes=settings.decisions.throttle_minutes)
    open_by_subject = dict(state.open_by_subject)
    open_count = state.open_count
    steps = []
    for alert in sorted(alerts, key=lambda a: (a.event_time, a.alert_id)):
        subject = subject_of(alert, settings)
        if subject is None:
            continue
        kind, key = subject
        own_id = decision_id(kind, key, alert.alert_id)
        if own_id in state.known_ids:
            steps.append(Step(alert, kind, key, own_id, Opening.DUPLICATE))
        elif subject in open_by_subject:
            steps.append(Step(alert, kind, key, open_by_subject[subject], Opening.JOINED))
        elif (closed := state.last_closed.get(subject)) is not None and now - closed < throttle:
            steps.append(Step(alert, kind, key, None, Opening.THROTTLED))
        elif open_count >= settings.decisions.max_open:
            steps.append(Step(alert, kind, key, None, Opening.CAPPED))
        else:
            open_by_subject[subject] = own_id
            open_count += 1
            steps.append(Step(alert, kind, key, own_id, Opening.OPENED))
    return steps


def suggested_quantity(stock: int, units_sold: int, settings: Settings) -> int:
    """Units to reorder: ``cover_hours`` of the product's sales rate over the last
    ``sales_lookback_hours`` (``units_sold``), plus what brings the stock back up to the
    low-stock threshold (a stock below zero counts in full); at least ``min_restock_quantity``,
    at most what one restock event may carry."""
    d = settings.decisions
    rate = max(0, units_sold) / d.sales_lookback_hours
    cover = math.ceil(rate * d.cover_hours)
    refill = max(0, settings.thresholds.low_stock - stock)
    return max(d.min_restock_quantity, min(settings.contracts.max_restock_quantity, cover + refill))


@dataclass(frozen=True)
class Answer:
    """A decision's outcome, from the HITL task's result."""

    outcome: str
    quantity: int | None
    decided_by: str | None  # None: nobody answered in time
    decided_by_id: str | None
    decided_at: datetime
    timed_out: bool
    note: str | None


class InvalidAnswer(ValueError):
    pass


def default_outcome(kind: str, settings: Settings) -> str:
    return settings.decisions.restock_default if kind == RESTOCK else settings.decisions.fraud_default


def default_option(kind: str, settings: Settings) -> str:
    outcome = default_outcome(kind, settings)
    return next(option for option, value in OPTIONS[kind].items() if value == outcome)


def answer_of(kind: str, result: Mapping, settings: Settings) -> Answer:
    """The HITL operator's result (chosen_options, params_input, responded_at, responded_by_user,
    timed_out) → the outcome to record. A reorder carries the quantity entered (the suggestion
    unless changed); a timeout gets the kind's default outcome whatever the form held."""
    chosen = list(result.get("chosen_options") or [])
    params = dict(result.get("params_input") or {})
    user = result.get("responded_by_user") or None
    timed_out = bool(result.get("timed_out")) or user is None
    decided_at = result["responded_at"]
    if isinstance(decided_at, str):
        decided_at = datetime.fromisoformat(decided_at)
    if timed_out:
        outcome = default_outcome(kind, settings)
    else:
        if len(chosen) != 1 or chosen[0] not in OPTIONS[kind]:
            raise InvalidAnswer(f"a {kind} decision takes one of {list(OPTIONS[kind])}, got {chosen}")
        outcome = OPTIONS[kind][chosen[0]]
    quantity = None
    if outcome == "reorder":
        quantity = params.get(QUANTITY_PARAM)
        if isinstance(quantity, str) and quantity.strip().isdigit():
            quantity = int(quantity)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not (
                1 <= quantity <= settings.contracts.max_restock_quantity):
            raise InvalidAnswer(f"a reorder needs a quantity from 1 to {settings.contracts.max_restock_quantity}, "
                                f"got {quantity!r}")
    note = params.get(NOTE_PARAM) or None
    return Answer(outcome=outcome, quantity=quantity,
                  decided_by=None if timed_out else (user.get("name") or user.get("id")),
                  decided_by_id=None if timed_out else user.get("id"),
                  decided_at=decided_at, timed_out=timed_out, note=str(note) if note is not None else None)
