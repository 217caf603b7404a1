"""Decisions in a real PostgreSQL (a sandbox database, migrated) and a real broker (sandbox topics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import psycopg2
import pytest

from globalmart import db
from globalmart.decisions.policy import FRAUD, RESTOCK, Answer, Opening, decision_id, suggested_quantity
from globalmart.decisions.quality import review_quality
from globalmart.decisions.service import close, open_for_alerts
from globalmart.decisions.store import DecisionStore, reviewed_anomalies
from globalmart.readmodel import marts
from tests.kafka_helpers import read_all
from tests.readmodel_fixtures import ANOMALY_ID, seed_marts
from tests.unit.test_decisions_policy import anomaly_alert, stock_alert

NOW = datetime.now(UTC)


def fresh(alert):
    return alert.model_copy(update={"event_time": NOW, "created_at": NOW})


def rows(settings) -> list[tuple]:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT kind, subject_key, status, alert_id, joined_alert_ids, suggested_quantity FROM decisions "
                    "ORDER BY opened_at, decision_id")
        return cur.fetchall()


def test_alerts_open_join_and_replay_into_the_table(stream_env):
    settings = stream_env
    with db.connect(settings) as conn, conn.cursor() as cur:  # 48 units of P1 sold in the last day, 5 before
        cur.executemany(
            "INSERT INTO product_window_sales (granularity, window_start, window_end, product_id, category, units, "
            "revenue, transactions) VALUES ('1m', %s, %s, 'P1', 'Kitchen', %s, 10, 1)",
            [(NOW - timedelta(hours=h), NOW - timedelta(hours=h) + timedelta(minutes=1), 12) for h in (1, 5, 9, 20)]
            + [(NOW - timedelta(hours=30), NOW - timedelta(hours=30) + timedelta(minutes=1), 5)])
    first, second = fresh(stock_alert("P1", 1, stock=2)), fresh(stock_alert("P1", 2, stock=1))
    review = fresh(anomaly_alert("A1", 0.95))
    with db.connect(settings) as conn:
        links = open_for_alerts(conn, [first, second, review, fresh(stock_alert("P2", 1, state="low", stock=8))],
                                settings, NOW)
        conn.commit()
    assert {a: (link.opening, link.decision_id) for a, link in links.items()} == {
        first.alert_id: (Opening.OPENED, decision_id(RESTOCK, "P1", first.alert_id)),
        second.alert_id: (Opening.JOINED, decision_id(RESTOCK, "P1", first.alert_id)),
        review.alert_id: (Opening.OPENED, decision_id(FRAUD, "A1", review.alert_id)),
    }
    expected_quantity = suggested_quantity(2, 48, settings)  # the stock of the alert: the tracker has no row
    assert rows(settings) == [(FRAUD, "A1", "open", review.alert_id, [], None),  # ids in order: fraud__, restock__
                              (RESTOCK, "P1", "open", first.alert_id, [second.alert_id], expected_quantity)]
    with db.connect(settings) as conn:  # the same poll again (a crash before the offsets were committed)
        again = open_for_alerts(conn, [first, second, review], settings, NOW)
        conn.commit()
    assert again[first.alert_id].opening is Opening.DUPLICATE
    assert again[second.alert_id].opening is Opening.JOINED
    assert rows(settings)[1][4] == [second.alert_id]  # joined once


def test_the_database_refuses_a_second_open_decision(stream_env):
    with db.connect(stream_env) as conn, conn.cursor() as cur:
        insert = ("INSERT INTO decisions (decision_id, kind, subject_key, dag_id, alert_id, facts, status, opened_at) "
                  "VALUES (%s, 'restock', 'P9', 'restock_decision', %s, '{}', 'open', now())")
        cur.execute(insert, ("d1", "a1"))
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(insert, ("d2", "a2"))


def test_a_reorder_sends_one_restock_through_the_contract(stream_env):
    settings = stream_env
    alert = fresh(stock_alert("P7", 1, stock=0))
    with db.connect(settings) as conn:
        (link,) = open_for_alerts(conn, [alert], settings, NOW).values()
        conn.commit()
    answer = {"chosen_options": ["Reorder"], "params_input": {"quantity": 33}, "responded_at": NOW,
              "responded_by_user": {"id": "ana", "name": "Ana"}, "timed_out": False}
    result = close(settings, link.decision_id, answer, NOW)
    assert (result["outcome"], result["quantity"], result["decided_by"]) == ("reorder", 33, "Ana")
    assert close(settings, link.decision_id, answer, NOW)["already_closed"]  # a retried task sends nothing more
    (message,) = read_all(settings, "inventory")
    event = orjson.loads(message.value())
    assert (event["product_id"], event["quantity"], event["action"]) == ("P7", 33, "restock")
    assert event["event_id"] == f"decision:{link.decision_id}" and message.key() == b"P7"
    with db.connect(settings) as conn:
        stored = DecisionStore(conn).get(link.decision_id)
    assert (stored.status, stored.decided_by, stored.decided_by_id, stored.restock_event_id) == (
        "closed", "Ana", "ana", event["event_id"])


def test_the_anomaly_row_shows_its_review_and_the_report_counts_it(stream_env):
    settings = stream_env
    seed_marts(settings)
    with db.connect(settings) as conn:
        before = {row["anomaly_id"]: row for row in marts.anomalies(conn).rows}
        assert before[ANOMALY_ID]["review_status"] is None
        store = DecisionStore(conn)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO decisions (decision_id, kind, subject_key, dag_id, alert_id, facts, status, "
                        "opened_at) VALUES ('r1', 'fraud', %s, 'fraud_review', 'a', '{}', 'open', now())", (ANOMALY_ID,))
        assert {r["anomaly_id"]: r for r in marts.anomalies(conn).rows}[ANOMALY_ID]["review_status"] == "open"
        store.close("r1", Answer("confirm_fraud", None, "Ana", "ana", NOW, False, None), NOW)
        conn.commit()
        row = {r["anomaly_id"]: r for r in marts.anomalies(conn).rows}[ANOMALY_ID]
        judged = review_quality(reviewed_anomalies(conn))
    assert (row["review_status"], row["review_outcome"], row["reviewed_by"]) == ("closed", "confirm_fraud", "Ana")
    high_value = next(r for r in judged if r.rule == "high_value")
    assert (high_value.reviewed, high_value.confirmed, high_value.judged_precision) == (1, 1, 1.0)
