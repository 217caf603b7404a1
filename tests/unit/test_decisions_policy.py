"""The rules of human decisions: which alerts open one, the suggested reorder, what an answer means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from globalmart.alerting.messages import parse_alert
from globalmart.decisions.policy import (
    FRAUD,
    RESTOCK,
    DecisionState,
    InvalidAnswer,
    Opening,
    answer_of,
    decision_id,
    plan_openings,
    subject_of,
    suggested_quantity,
)
from globalmart.decisions.quality import review_quality
from globalmart.settings import Settings

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SETTINGS = Settings()


def stock_alert(product: str, serial: int, state: str = "critical", stock: int = 3, seconds: int = 0):
    at = (NOW - timedelta(minutes=10) + timedelta(seconds=seconds)).isoformat()
    return parse_alert(
        f'{{"alert_id": "stock:{product}:{state}:{serial}", "app": "inventory_tracker", "kind": "stock.{state}", '
        f'"severity": "critical", "subject": "s", "event_time": "{at}", "created_at": "{at}", '
        f'"detail": {{"product_id": "{product}", "stock": {stock}, "state_before": "ok", "state": "{state}", '
        f'"threshold": 5}}}}')


def anomaly_alert(anomaly: str, score: float, serial: int = 0, rule: str = "high_value"):
    at = (NOW - timedelta(minutes=5) + timedelta(seconds=serial)).isoformat()
    return parse_alert(
        f'{{"alert_id": "anomaly:{anomaly}:{serial}", "app": "anomaly_detector", "kind": "anomaly.{rule}", '
        f'"severity": "critical", "subject": "s", "event_time": "{at}", "created_at": "{at}", '
        f'"detail": {{"anomaly_id": "{anomaly}", "kind": "{rule}", "user_id": "U1", "country": "USA", '
        f'"transaction_ids": ["T1"], "first_event_time": "{at}", "last_event_time": "{at}", "amount": 9000.0, '
        f'"observed": 9000.0, "threshold": 5000.0, "score": {score}, "description": "one purchase of $9,000"}}}}')


def test_only_critical_stock_and_high_scores_ask_for_a_decision():
    assert subject_of(stock_alert("P1", 1), SETTINGS) == (RESTOCK, "P1")
    assert subject_of(stock_alert("P1", 1, state="low", stock=8), SETTINGS) is None
    review = SETTINGS.decisions.fraud_review_score
    assert subject_of(anomaly_alert("A1", review), SETTINGS) == (FRAUD, "A1")
    assert subject_of(anomaly_alert("A1", round(review - 0.01, 2)), SETTINGS) is None


def test_decision_ids_are_valid_run_ids_and_deterministic():
    one = decision_id(RESTOCK, "P 1/ü:x", "alert-1")
    assert one == decision_id(RESTOCK, "P 1/ü:x", "alert-1")
    assert one != decision_id(RESTOCK, "P 1/ü:x", "alert-2")
    assert one.startswith("restock__P_1___x__")
    assert all(c.isalnum() or c in "_.~+-" for c in one)
    assert len(decision_id(FRAUD, "A" * 500, "x")) <= 7 + 2 + 100 + 2 + 12


def test_a_second_alert_about_an_open_product_joins_its_decision():
    first, second = stock_alert("P1", 1), stock_alert("P1", 2, seconds=5)
    steps = plan_openings([second, first], DecisionState(), NOW, SETTINGS)
    assert [(s.alert.alert_id, s.opening) for s in steps] == [
        (first.alert_id, Opening.OPENED), (second.alert_id, Opening.JOINED)]
    assert steps[0].decision_id == steps[1].decision_id == decision_id(RESTOCK, "P1", first.alert_id)


def test_replayed_alert_changes_nothing():
    alert = stock_alert("P1", 1)
    own = decision_id(RESTOCK, "P1", alert.alert_id)
    state = DecisionState(open_by_subject={(RESTOCK, "P1"): own}, known_ids=frozenset({own}), open_count=1)
    (step,) = plan_openings([alert], state, NOW, SETTINGS)
    assert step.opening is Opening.DUPLICATE and step.decision_id == own


def test_throttle_after_a_closed_decision():
    alert = stock_alert("P1", 1)
    period = timedelta(minutes=SETTINGS.decisions.throttle_minutes)
    recent = DecisionState(last_closed={(RESTOCK, "P1"): NOW - period + timedelta(seconds=1)})
    assert plan_openings([alert], recent, NOW, SETTINGS)[0].opening is Opening.THROTTLED
    old = DecisionState(last_closed={(RESTOCK, "P1"): NOW - period})
    assert plan_openings([alert], old, NOW, SETTINGS)[0].opening is Opening.OPENED


def test_cap_on_open_decisions():
    cap = SETTINGS.decisions.max_open
    alerts = [stock_alert(f"P{n}", n) for n in range(3)]
    steps = plan_openings(alerts, DecisionState(open_count=cap - 1), NOW, SETTINGS)
    assert [s.opening for s in steps] == [Opening.OPENED, Opening.CAPPED, Opening.CAPPED]


alert_batches = st.lists(
    st.one_of(
        st.builds(lambda p, n, s: stock_alert(f"P{p}", n, seconds=s), st.integers(0, 5), st.integers(0, 3),
                  st.integers(0, 600)),
        st.builds(lambda a, n, score: anomaly_alert(f"A{a}", score, serial=n), st.integers(0, 5), st.integers(0, 3),
                  st.sampled_from([0.5, 0.85, 0.9, 0.95, 1.0])),
        st.builds(lambda p, n: stock_alert(f"P{p}", n, state="low", stock=8), st.integers(0, 5), st.integers(0, 3)),
    ),
    max_size=40,
)


@hsettings(max_examples=200, deadline=None)
@given(alerts=alert_batches, already_open=st.sets(st.integers(0, 5), max_size=3),
       closed_minutes_ago=st.dictionaries(st.integers(0, 5), st.integers(0, 120), max_size=3),
       max_open=st.integers(1, 8))
def test_never_two_open_decisions_per_subject_nor_more_than_the_cap(alerts, already_open, closed_minutes_ago, max_open):
    settings = SETTINGS.model_copy(update={"decisions": SETTINGS.decisions.model_copy(update={"max_open": max_open})})
    open_by_subject = {(RESTOCK, f"P{p}"): f"restock__P{p}__old" for p in already_open}
    last_closed = {(RESTOCK, f"P{p}"): NOW - timedelta(minutes=m) for p, m in closed_minutes_ago.items()
                   if p not in already_open}
    state = DecisionState(open_by_subject, last_closed, frozenset(open_by_subject.values()), len(open_by_subject))
    steps = plan_openings(alerts, state, NOW, settings)

    asking = [a for a in alerts if subject_of(a, settings) is not None]
    assert sorted(s.alert.alert_id for s in steps) == sorted(a.alert_id for a in asking)  # each exactly once
    opened = [s for s in steps if s.opening is Opening.OPENED]
    opened_subjects = [(s.kind, s.subject_key) for s in opened]
    assert len(set(opened_subjects)) == len(opened_subjects)  # one opening per subject
    assert not set(opened_subjects) & set(open_by_subject)  # none where one is open
    assert len(open_by_subject) + len({d.decision_id for d in opened}) <= max(max_open, len(open_by_subject))
    open_now = {**open_by_subject, **{(s.kind, s.subject_key): s.decision_id for s in opened}}
    throttle = timedelta(minutes=settings.decisions.throttle_minutes)
    for step in steps:
        subject = (step.kind, step.subject_key)
        if step.opening is Opening.JOINED:
            assert step.decision_id == open_now[subject]
        if step.opening is Opening.OPENED and subject in last_closed:
            assert NOW - last_closed[subject] >= throttle
        if step.opening is Opening.THROTTLED:
            assert NOW - last_closed[subject] < throttle
    # a replay of the same poll with what it recorded opens nothing more
    recorded = DecisionState(open_now, last_closed, frozenset(open_now.values()), len(open_now))
    again = plan_openings(alerts, recorded, NOW, settings)
    assert not [s for s in again if s.opening is Opening.OPENED]


@given(stock=st.integers(-1_000_000, 1_000_000), sold=st.integers(0, 10_000_000), more=st.integers(0, 1000))
def test_suggested_quantity_is_bounded_and_grows_with_sales(stock, sold, more):
    quantity = suggested_quantity(stock, sold, SETTINGS)
    assert SETTINGS.decisions.min_restock_quantity <= quantity <= SETTINGS.contracts.max_restock_quantity
    assert suggested_quantity(stock, sold + more, SETTINGS) >= quantity
    assert suggested_quantity(stock - more, sold, SETTINGS) >= quantity
    if quantity < SETTINGS.contracts.max_restock_quantity:  # not capped: the stock ends at least at low stock
        assert stock + quantity >= SETTINGS.thresholds.low_stock


def test_suggested_quantity_from_sales():
    # 48 units in 24 h, 72 h of cover: 144, plus 10 - 2 to reach low stock
    assert suggested_quantity(2, 48, SETTINGS) == 152
    assert suggested_quantity(3, 0, SETTINGS) == SETTINGS.decisions.min_restock_quantity


def result(options, params=None, user=None, timed_out=False):
    return {"chosen_options": options, "params_input": params or {}, "responded_at": NOW,
            "responded_by_user": user, "timed_out": timed_out}


def test_answers_map_to_outcomes():
    admin = {"id": "1", "name": "admin"}
    reorder = answer_of(RESTOCK, result(["Reorder"], {"quantity": 40}, admin), SETTINGS)
    assert (reorder.outcome, reorder.quantity, reorder.decided_by, reorder.timed_out) == ("reorder", 40, "admin", False)
    assert answer_of(RESTOCK, result(["Ignore"], {"quantity": 40}, admin), SETTINGS).quantity is None
    assert answer_of(FRAUD, result(["Confirm fraud"], user=admin), SETTINGS).outcome == "confirm_fraud"
    assert answer_of(FRAUD, result(["Mark legitimate"], user=admin), SETTINGS).outcome == "legitimate"
    assert answer_of(FRAUD, result(["Hold customer"], user=admin), SETTINGS).outcome == "hold_customer"


def test_a_timeout_gets_the_default_outcome_and_no_user():
    timed = answer_of(FRAUD, result(["Hold customer"], timed_out=True), SETTINGS)
    assert (timed.outcome, timed.decided_by, timed.timed_out) == (SETTINGS.decisions.fraud_default, None, True)
    # no user is a timeout too (the scheduler's sweep answers with the defaults)
    assert answer_of(RESTOCK, result(["Ignore"]), SETTINGS).timed_out


@pytest.mark.parametrize("quantity", [0, -3, None, "many", True, 10**9])
def test_a_reorder_needs_a_plausible_quantity(quantity):
    with pytest.raises(InvalidAnswer):
        answer_of(RESTOCK, result(["Reorder"], {"quantity": quantity}, {"id": "1", "name": "a"}), SETTINGS)


def test_an_option_of_the_other_kind_is_refused():
    with pytest.raises(InvalidAnswer):
        answer_of(RESTOCK, result(["Confirm fraud"], user={"id": "1", "name": "a"}), SETTINGS)


def test_review_quality_per_rule():
    rows = [("high_value", "confirm_fraud", False), ("high_value", "legitimate", False),
            ("high_value", "confirm_fraud", False), ("high_value", None, False),
            ("high_value", "hold_customer", True), ("rapid_fire_count", "hold_customer", False)]
    by_rule = {r.rule: r for r in review_quality(rows)}
    hv = by_rule["high_value"]
    assert (hv.anomalies, hv.reviewed, hv.confirmed, hv.legitimate, hv.held, hv.timed_out) == (5, 4, 2, 1, 0, 1)
    assert hv.judged_precision == pytest.approx(2 / 3)
    assert by_rule["rapid_fire_count"].judged_precision is None
