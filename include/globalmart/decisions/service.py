"""The calls the alerts DAG and the decision DAGs make: open, start, show, close.

- :func:`open_for_alerts` (alert notifier, under its lock): the decisions one poll's alerts
  open or join, recorded in the caller's transaction; returns each alert's decision link.
- :func:`start_runs`: a DAG run per recorded decision not yet started, through Airflow's REST
  API with the decision id as run id (a second start of one decision is refused by Airflow).
  A failure leaves the decision for the next call: the alerts DAG's next run or its cron.
- :func:`prepare_form` (the decision's HITL task): the form's subject, body and suggestion.
- :func:`close` (the task after it): the outcome recorded; an approved reorder sent to the
  ``inventory`` topic; a timed-out decision escalated by email. Each effect is recorded right
  after it happens, so a retried task repeats none that completed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from globalmart import db
from globalmart.alerting.messages import AlertMessage
from globalmart.decisions.policy import (
    RESTOCK,
    Opening,
    answer_of,
    decision_id as make_decision_id,
    plan_openings,
    subject_of,
    suggested_quantity,
)
from globalmart.decisions.rendering import alert_link_text, decision_url, escalation_email, form_body, form_subject
from globalmart.decisions.restock import publish_restock, restock_event
from globalmart.decisions.store import Decision, DecisionStore
from globalmart.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecisionLink:
    """What an alert email shows about the alert's decision."""

    decision_id: str
    url: str
    text: str
    opening: Opening


def _dag_id(kind: str, settings: Settings) -> str:
    return settings.decisions.restock_dag_id if kind == RESTOCK else settings.decisions.fraud_dag_id


def open_for_alerts(conn, alerts: Sequence[AlertMessage], settings: Settings, now: datetime) -> dict[str, DecisionLink]:
    """Open or join the decisions ``alerts`` ask for (the caller commits); alert id → its link."""
    wanted = [s for a in alerts if (s := subject_of(a, settings)) is not None]
    if not wanted:
        return {}
    store = DecisionStore(conn)
    state = store.state(wanted, now - timedelta(minutes=settings.decisions.throttle_minutes))
    own_ids = [make_decision_id(*s, a.alert_id) for a in alerts if (s := subject_of(a, settings)) is not None]
    state = replace(state, known_ids=store.known_ids(own_ids))
    steps = plan_openings(alerts, state, now, settings)
    suggestions = {}
    since = now - timedelta(hours=settings.decisions.sales_lookback_hours)
    for step in steps:
        if step.opening is Opening.OPENED and step.kind == RESTOCK:
            stock = store.stock(step.subject_key)
            stock = step.alert.detail.stock if stock is None else stock
            suggestions[step.decision_id] = suggested_quantity(stock, store.recent_units_sold(step.subject_key, since),
                                                               settings)
    store.record(steps, settings, now, suggestions)
    links = {}
    for step in steps:
        if step.decision_id is not None:
            links[step.alert.alert_id] = DecisionLink(
                step.decision_id, decision_url(settings, _dag_id(step.kind, settings), step.decision_id),
                alert_link_text(step.kind), step.opening)
        log.info("alert %s: %s decision %s (%s)", step.alert.alert_id, step.kind, step.decision_id, step.opening.value)
    return links


def start_runs(settings: Settings, limit: int = 100) -> dict[str, int]:
    """A DAG run for each open decision not yet started; counts of started and failed."""
    from globalmart.streaming.control import AirflowApi

    counts = {"started": 0, "existed": 0, "failed": 0}
    with db.connect(settings) as conn:
        store = DecisionStore(conn)
        pending = store.to_start(limit)
        if not pending:
            return counts
        try:
            api = AirflowApi(settings).__enter__()
        except Exception as error:  # noqa: BLE001 - Airflow down: the next call starts them
            log.warning("Airflow's API did not answer (%s): %d decisions wait to be started", error, len(pending))
            counts["failed"] = len(pending)
            return counts
        try:
            for decision in pending:
                response = api.client.post(f"/api/v2/dags/{decision.dag_id}/dagRuns", json={
                    "dag_run_id": decision.decision_id, "logical_date": None,
                    "conf": {"decision_id": decision.decision_id},
                    "note": f"opened by alert {decision.alert_id}"})
                if response.status_code in (200, 201) or response.status_code == 409:
                    counts["started" if response.status_code != 409 else "existed"] += 1
                    store.mark_started(decision.decision_id, datetime.now(UTC))
                    conn.commit()
                else:
                    counts["failed"] += 1
                    log.warning("could not start decision %s (%s): %s %s", decision.decision_id, decision.dag_id,
                                response.status_code, response.text[:300])
        finally:
            api.__exit__(None, None, None)
    log.info("decision runs: %s", counts)
    return counts


@dataclass(frozen=True)
class Form:
    subject: str
    body: str
    suggested_quantity: int | None
    response_timeout: timedelta


def prepare_form(settings: Settings, decision_id: str, now: datetime) -> Form:
    """The form of ``decision_id``; records that it waits for an answer from ``now``."""
    timeout = timedelta(minutes=settings.decisions.response_timeout_minutes)
    with db.connect(settings) as conn:
        store = DecisionStore(conn)
        decision = _existing(store, decision_id)
        units = None
        if decision.kind == RESTOCK:
            units = store.recent_units_sold(decision.subject_key, now - timedelta(hours=settings.decisions.sales_lookback_hours))
        store.mark_waiting(decision_id, now, now + timeout)
        conn.commit()
    return Form(form_subject(decision), form_body(decision, settings, units), decision.suggested_quantity, timeout)


def _existing(store: DecisionStore, decision_id: str) -> Decision:
    decision = store.get(decision_id)
    if decision is None:
        raise LookupError(f"no decision {decision_id!r} in the decisions table: runs of this DAG are started "
                          "by the alerts DAG (a critical-stock or high-score anomaly alert)")
    return decision


def close(settings: Settings, decision_id: str, result: Mapping, now: datetime) -> dict:
    """Act on the answer (or the timeout) of ``decision_id`` and record it."""
    from globalmart.alerting.delivery import AlertSmtpHook, build_message

    with db.connect(settings) as conn:
        store = DecisionStore(conn)
        decision = _existing(store, decision_id)
        answer = answer_of(decision.kind, result, settings)
        if decision.status == "closed":
            log.info("decision %s was closed before (%s): nothing to do", decision_id, decision.outcome)
            return {"decision_id": decision_id, "outcome": decision.outcome, "already_closed": True}
        if answer.outcome == "reorder" and decision.restock_sent_at is None:
            event = restock_event(decision_id, decision.subject_key, answer.quantity, now)
            publish_restock(settings, event)
            store.mark_restock_sent(decision_id, event.event_id, now)
            conn.commit()
            log.info("restock of %d units of %s sent (event %s)", answer.quantity, decision.subject_key, event.event_id)
        if answer.timed_out and decision.escalated_at is None:
            email = escalation_email(decision, answer.outcome, settings)
            message = build_message(email, settings.smtp.sender, settings.decisions.escalation_recipients)
            with AlertSmtpHook(smtp_conn_id=settings.alerting.smtp_conn_id) as hook:
                hook.send_message(message)
            store.mark_escalated(decision_id, now)
            conn.commit()
            log.info("decision %s timed out: escalated to %s", decision_id, settings.decisions.escalation_recipients)
        store.close(decision_id, answer, now)
        conn.commit()
    return {"decision_id": decision_id, "kind": decision.kind, "subject": decision.subject_key,
            "outcome": answer.outcome, "quantity": answer.quantity, "decided_by": answer.decided_by,
            "decided_at": answer.decided_at.isoformat(), "timed_out": answer.timed_out}


def earlier_answer(settings: Settings, decision_id: str, dag_id: str, run_id: str, task_id: str,
                   map_index: int = -1) -> dict | None:
    """The answer the form of this task instance holds from an earlier try, while the decision
    is open (see ``DecisionOperator``); None when there is none, or it was taken already."""
    from globalmart.streaming.control import AirflowApi

    with db.connect(settings) as conn:
        decision = DecisionStore(conn).get(decision_id)
    if decision is None or decision.status != "open":
        return None  # cleared on purpose after the decision was taken: ask again
    with AirflowApi(settings) as api:
        response = api.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    detail = response.json()
    if not detail.get("response_received") or not detail.get("chosen_options"):
        return None
    user = detail.get("responded_by_user")
    log.info("decision %s was answered before this try (%s by %s): not asking again", decision_id,
             detail["chosen_options"], (user or {}).get("name") or "the timeout")
    return {"chosen_options": list(detail["chosen_options"]), "params_input": detail.get("params_input") or {},
            "responded_at": datetime.fromisoformat(detail["responded_at"]), "responded_by_user": user,
            "timed_out": not user}
