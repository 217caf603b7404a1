"""Human-in-the-loop decisions through the running Airflow (issue 21).

alert on the Kafka ``alerts`` topic → alerts DAG (email with the link, decision recorded, DAG
run started) → the decision's HITL task waits (``awaiting_input``) → answered through the REST
API, or timed out by the scheduler → ``record``: restock event on ``inventory`` / escalation
email, outcome in ``decisions``.

Each test uses products and anomalies of its own (a unique marker in every id); the restocks it
approves are for those made-up products only.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from globalmart import db
from globalmart.decisions.policy import DECIDE_TASK
from globalmart.decisions.restock import restock_event_id
from globalmart.decisions.service import open_for_alerts
from globalmart.decisions.store import DecisionStore
from globalmart.platform.supervisor import Supervisor
from globalmart.streaming.control import poll_until
from tests.e2e.test_alerts_dag import publish, stock_alert, wait_for_emails
from tests.kafka_helpers import read_all
from tests.mail_helpers import inbox_of
from tests.unit.test_decisions_policy import anomaly_alert

DECISION_WAIT_SECONDS = 180  # alerts DAG wake-up, its run, the decision run's start
RUN_WAIT_SECONDS = 120


class Api:
    def __init__(self, settings):
        self.settings = settings
        af = settings.airflow
        self.client = httpx.Client(base_url=af.url, timeout=30)
        token = self.client.post("/auth/token", json={"username": af.admin_user,
                                                      "password": af.admin_password.get_secret_value()})
        token.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str, **params):
        response = self.client.get(f"/api/v2{path}", params=params)
        response.raise_for_status()
        return response.json()

    def answer(self, dag_id: str, run_id: str, options: list[str], params: dict | None = None) -> httpx.Response:
        return self.client.patch(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DECIDE_TASK}/-1/hitlDetails",
                                 json={"chosen_options": options, "params_input": params or {}})

    def wait_task_state(self, dag_id: str, run_id: str, states: set[str], seconds: float = RUN_WAIT_SECONDS) -> str:
        def state_reached():
            response = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DECIDE_TASK}")
            state = response.json().get("state") if response.status_code == 200 else None
            return state if state in states else None

        return poll_until(f"{dag_id}/{run_id}: decide in {states}", state_reached, seconds)

    def wait_run(self, dag_id: str, run_id: str, seconds: float = RUN_WAIT_SECONDS) -> str:
        def ended():
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        return poll_until(f"{dag_id}/{run_id} to end", ended, seconds)

    def runs_about(self, dag_id: str, marker: str) -> list[str]:
        runs = self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="-run_after")["dag_runs"]
        return [r["dag_run_id"] for r in runs if marker in r["dag_run_id"]]


@pytest.fixture(scope="module")
def api(platform):
    """The alerts and decision DAGs, parsed by the running Airflow and not paused."""
    client = Api(platform)
    for dag_id in ("alerts", platform.decisions.restock_dag_id, platform.decisions.fraud_dag_id):
        def registered(dag_id=dag_id):
            response = client.client.get(f"/api/v2/dags/{dag_id}")
            return response if response.status_code != 404 else None

        response = poll_until(f"the DAG processor to register {dag_id}", registered, 120, every=2)
        if response.json()["is_paused"]:
            client.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    return client


def decisions_about(settings, marker: str) -> list[dict]:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT decision_id, status, outcome, quantity, decided_by, decided_at, timed_out, escalated_at, "
                    "restock_event_id, joined_alert_ids, suggested_quantity FROM decisions "
                    "WHERE subject_key LIKE %s ORDER BY opened_at", (f"%{marker}%",))
        columns = [c.name for c in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]


def wait_decisions(settings, marker: str, expected: int, seconds: float = DECISION_WAIT_SECONDS) -> list[dict]:
    def found():
        rows = decisions_about(settings, marker)
        return rows if len(rows) >= expected else None

    return poll_until(f"{expected} decisions about {marker}", found, seconds)


def now_alert(alert: dict) -> dict:
    moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {**alert, "event_time": moment, "created_at": moment}


def test_reorder_answered_through_the_rest_api_sends_the_restock_and_records_who(api):
    settings = api.settings
    product = f"P-hitl-reorder-{uuid.uuid4().hex[:8]}"
    inventory_before = len(read_all(settings, "inventory"))
    publish(settings, [stock_alert(product, 1, state="critical", stock=2)])

    (decision,) = wait_decisions(settings, product, 1)
    run_id = decision["decision_id"]
    dag_id = settings.decisions.restock_dag_id
    # the alert email links to the decision's form
    (email,) = wait_for_emails(settings, product, expected=1)
    link = f"/dags/{dag_id}/runs/{run_id}/tasks/{DECIDE_TASK}/required_actions"
    assert link in email["html"] and link in email["text"]

    assert api.wait_task_state(dag_id, run_id, {"awaiting_input"}) == "awaiting_input"
    form = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DECIDE_TASK}/-1/hitlDetails")
    assert form["subject"] == f"Restock {product}? 2 left (critical below 5)"
    assert form["params"]["quantity"]["value"] == decision["suggested_quantity"] >= settings.decisions.min_restock_quantity
    assert form["defaults"] == ["Ignore"]

    refused = api.answer(dag_id, run_id, ["Confirm fraud"])
    assert refused.status_code == 400  # not an option of a restock decision
    answered = api.answer(dag_id, run_id, ["Reorder"], {"quantity": 37})
    assert answered.status_code == 200, answered.text
    assert api.wait_run(dag_id, run_id) == "success"

    (closed,) = decisions_about(settings, product)
    assert (closed["status"], closed["outcome"], closed["quantity"]) == ("closed", "reorder", 37)
    assert closed["decided_by"] == settings.airflow.admin_user and closed["decided_at"] is not None
    assert closed["timed_out"] is False and closed["escalated_at"] is None
    restocks = [orjson.loads(m.value()) for m in read_all(settings, "inventory")[inventory_before:]]
    mine = [r for r in restocks if r.get("product_id") == product]
    assert mine == [{"schema_version": 1, "event_time": mine[0]["event_time"], "event_id": restock_event_id(run_id),
                     "product_id": product, "action": "restock", "quantity": 37}]
    assert closed["restock_event_id"] == restock_event_id(run_id)
    # answered once: a second answer is refused
    assert api.answer(dag_id, run_id, ["Ignore"]).status_code == 409


def test_no_second_decision_while_one_is_open_then_throttled(api):
    settings = api.settings
    product = f"P-hitl-once-{uuid.uuid4().hex[:8]}"
    dag_id = settings.decisions.restock_dag_id
    publish(settings, [now_alert(stock_alert(product, 1, state="critical", stock=4))])
    (first,) = wait_decisions(settings, product, 1)
    api.wait_task_state(dag_id, first["decision_id"], {"awaiting_input"})

    # two more critical alerts about the product (it went back up and down again) while it is open
    publish(settings, [now_alert(stock_alert(product, 2, state="critical", stock=3)),
                       now_alert(stock_alert(product, 3, state="critical", stock=1))])
    def joined():
        rows = decisions_about(settings, product)
        return rows if len(rows[0]["joined_alert_ids"]) >= 2 else None

    found = poll_until("the two alerts joined to the open decision", joined, DECISION_WAIT_SECONDS)
    assert len(found) == 1
    assert sorted(found[0]["joined_alert_ids"]) == [f"stock:{product}:critical:2", f"stock:{product}:critical:3"]
    assert api.runs_about(dag_id, product) == [first["decision_id"]]

    # answered (ignore): closed; a new alert within the throttle period opens none
    assert api.answer(dag_id, first["decision_id"], ["Ignore"], {"quantity": 10}).status_code == 200
    assert api.wait_run(dag_id, first["decision_id"]) == "success"
    publish(settings, [now_alert(stock_alert(product, 4, state="critical", stock=0))])
    poll_until("the alerts DAG to handle the fourth alert", lambda: _handled(settings, f"stock:{product}:critical:4"),
               DECISION_WAIT_SECONDS)
    (only,) = decisions_about(settings, product)
    assert (only["status"], only["outcome"], only["quantity"]) == ("closed", "ignore", None)
    assert api.runs_about(dag_id, product) == [first["decision_id"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _handled(settings, alert_id: str) -> bool:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM alert_notifications WHERE alert_id = %s", (alert_id,))
        return cur.fetchone() is not None


def test_timeout_escalates_by_email_and_closes_with_the_default(api):
    settings = api.settings
    anomaly = f"A-hitl-timeout-{uuid.uuid4().hex[:8]}"
    alert = anomaly_alert(anomaly, 0.97)
    alert = alert.model_copy(update={"event_time": datetime.now(UTC), "created_at": datetime.now(UTC)})
    with db.connect(settings) as conn:  # what the alert notifier does, without waiting for an alert email
        links = open_for_alerts(conn, [alert], settings, datetime.now(UTC))
        conn.commit()
    (link,) = links.values()
    dag_id = settings.decisions.fraud_dag_id
    # the run the notifier would start, with a timeout of 15 s instead of hours
    started = api.client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={
        "dag_run_id": link.decision_id, "logical_date": None,
        "conf": {"decision_id": link.decision_id, "response_timeout_minutes": 0.25}})
    assert started.status_code == 200, started.text
    with db.connect(settings) as conn:
        DecisionStore(conn).mark_started(link.decision_id, datetime.now(UTC))
        conn.commit()

    api.wait_task_state(dag_id, link.decision_id, {"awaiting_input"})
    # nobody answers: the scheduler's sweep (every 15 s) applies the default once 15 s have passed
    assert api.wait_run(dag_id, link.decision_id, seconds=RUN_WAIT_SECONDS) == "success"
    (closed,) = decisions_about(settings, anomaly)
    assert (closed["status"], closed["outcome"], closed["timed_out"]) == ("closed", "hold_customer", True)
    assert closed["decided_by"] is None and closed["escalated_at"] is not None
    recipient = settings.decisions.escalation_recipients[0]
    emails = [m for m in inbox_of(settings, recipient, expected=1, wait_seconds=30) if anomaly in (m.get("text") or "")]
    (escalation,) = [m for m in emails if link.decision_id in m["text"]]
    assert escalation["subject"].startswith("[GlobalMart] Escalation: no answer to \"Fraud review: high-value")
    assert escalation["subject"].endswith("closed as Hold customer")
    assert link.url in escalation["text"]


def test_an_open_decision_survives_an_airflow_restart(api):
    settings = api.settings
    anomaly = f"A-hitl-restart-{uuid.uuid4().hex[:8]}"
    alert = anomaly_alert(anomaly, 0.95)
    alert = alert.model_copy(update={"event_time": datetime.now(UTC), "created_at": datetime.now(UTC)})
    with db.connect(settings) as conn:
        (link,) = open_for_alerts(conn, [alert], settings, datetime.now(UTC)).values()
        conn.commit()
    from globalmart.decisions.service import start_runs

    assert start_runs(settings)["failed"] == 0
    dag_id = settings.decisions.fraud_dag_id
    api.wait_task_state(dag_id, link.decision_id, {"awaiting_input"})

    # nothing in memory holds the open decision: the task's process has ended, it waits in the database
    ti = api.get(f"/dags/{dag_id}/dagRuns/{link.decision_id}/taskInstances/{DECIDE_TASK}")
    # (the state says "awaiting input" a moment before the deferring process has exited)
    poll_until("the deferred task's process to exit", lambda: ti["pid"] is None or not _alive(ti["pid"]), 60)
    assert api.wait_task_state(dag_id, link.decision_id, {"awaiting_input"}) == "awaiting_input"

    # restart Airflow: API server, triggerer, DAG processor, and the scheduler too unless another
    # task is running (the platform is shared; the scheduler's LocalExecutor runs everyone's tasks)
    running = api.get("/dags/~/dagRuns/~/taskInstances", state=["running", "queued"], limit=1)["total_entries"]
    supervisor = Supervisor(settings)
    restarted = ["airflow-api-server", "airflow-triggerer", "airflow-dag-processor"] + (
        ["airflow-scheduler"] if running == 0 else [])
    print(f"restarting {restarted} ({running} other tasks running)")
    for name in restarted:
        supervisor.stop(name)
    assert all(supervisor.state(name) == "STOPPED" for name in restarted)
    for name in restarted:
        supervisor.start(name)
    def logged_in():  # the API answers again (a new login: the old token may not survive)
        try:
            return Api(settings)
        except httpx.HTTPError:
            return None

    fresh = poll_until("Airflow's API to come back", logged_in, 180, every=2)
    assert fresh.wait_task_state(dag_id, link.decision_id, {"awaiting_input"}) == "awaiting_input"
    assert fresh.answer(dag_id, link.decision_id, ["Mark legitimate"]).status_code == 200
    assert fresh.wait_run(dag_id, link.decision_id, seconds=180) == "success"
    (closed,) = decisions_about(settings, anomaly)
    assert (closed["outcome"], closed["decided_by"], closed["timed_out"]) == ("legitimate", settings.airflow.admin_user, False)


def test_an_answer_given_the_moment_the_form_appears_is_not_lost(api):
    """Airflow 3.3 can fail a try resuming with an answer that came within a second of the task
    parking (the executor's report of the parked process races the resume); the retry must take
    that answer instead of asking again and clearing it. Answered at once, several times."""
    settings = api.settings
    marker = f"P-hitl-race-{uuid.uuid4().hex[:8]}"
    alerts = [fresh_alert for fresh_alert in (now_alert(stock_alert(f"{marker}-{n}", 1, state="critical", stock=1))
                                              for n in range(3))]
    from globalmart.alerting.messages import parse_alert
    from globalmart.decisions.service import start_runs

    with db.connect(settings) as conn:
        links = open_for_alerts(conn, [parse_alert(orjson.dumps(a)) for a in alerts], settings, datetime.now(UTC))
        conn.commit()
    assert len(links) == 3 and start_runs(settings)["failed"] == 0
    dag_id = settings.decisions.restock_dag_id
    pending = {link.decision_id: 20 + n for n, link in enumerate(links.values())}
    def answer_the_waiting() -> bool:  # each the moment its form is there (polling every 0.1 s)
        for run_id, quantity in list(pending.items()):
            ti = api.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DECIDE_TASK}").json()
            if ti.get("state") == "awaiting_input":
                assert api.answer(dag_id, run_id, ["Reorder"], {"quantity": quantity}).status_code == 200
                del pending[run_id]
        return not pending

    poll_until(f"every form waiting and answered ({len(pending)} left)", answer_the_waiting, RUN_WAIT_SECONDS, every=0.1)
    tries = {}
    for n, link in enumerate(links.values()):
        assert api.wait_run(dag_id, link.decision_id, seconds=RUN_WAIT_SECONDS) == "success"
        tries[link.decision_id] = api.get(f"/dags/{dag_id}/dagRuns/{link.decision_id}/taskInstances/{DECIDE_TASK}")["try_number"]
    print(f"tries of decide: {tries}")
    closed = {d["decision_id"]: d for d in decisions_about(settings, marker)}
    for n, link in enumerate(links.values()):
        d = closed[link.decision_id]
        assert (d["status"], d["outcome"], d["quantity"], d["decided_by"]) == (
            "closed", "reorder", 20 + n, settings.airflow.admin_user), d
