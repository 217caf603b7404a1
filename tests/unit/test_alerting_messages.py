"""Alert messages as the streaming apps publish them parse into typed alerts; others are refused."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from globalmart.alerting.messages import (
    AbandonmentSpikeAlert,
    AnomalyAlert,
    DataQualityAlert,
    MalformedAlert,
    StockAlert,
    parse_alert,
)
from globalmart.alerting.rendering import render_alert
from globalmart.settings import Settings, Thresholds
from globalmart.streaming.sink import Alert, BatchContext, _json_dumps, _utc_iso
from spark_jobs.streaming.anomaly_detector import anomaly_alerts
from spark_jobs.streaming.inventory_tracker import crossing_alerts
from spark_jobs.streaming.sessions import spike_alerts

T = Thresholds()
AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def published(alert: Alert, app: str) -> bytes:
    """The message AlertPublisher sends for ``alert`` (its detail went through jsonb)."""
    return _json_dumps({
        "alert_id": alert.alert_id, "app": app, "kind": alert.kind, "severity": alert.severity,
        "subject": alert.subject, "detail": json.loads(_json_dumps(alert.detail)),
        "event_time": _utc_iso(alert.event_time), "created_at": _utc_iso(AT),
    }).encode()


def test_inventory_tracker_alerts_parse_as_stock_alerts():
    context = BatchContext("inventory_tracker", "inventory_tracker.stock", "c0ffee", 7)
    produced = crossing_alerts([("P1", 8, "ok", "low", AT, 12), ("P2", 3, "low", "critical", AT, 9),
                                ("P3", -2, "low", "critical", AT, 4)], context, T)
    low, critical, oversold = (parse_alert(published(a, "inventory_tracker")) for a in produced)
    assert isinstance(low, StockAlert) and isinstance(critical, StockAlert)
    assert (low.kind, low.detail.product_id, low.detail.stock, low.detail.threshold) == ("stock.low", "P1", 8, 10)
    assert (critical.kind, critical.detail.state_before, critical.detail.state, critical.severity) == (
        "stock.critical", "low", "critical", "critical")
    assert critical.subject_key == "P2" and critical.event_time == AT
    assert critical.detail.category is None  # the tracker does not send it; the catalog fills it in
    assert isinstance(oversold, DataQualityAlert) and oversold.kind == "data_quality.oversold"
    assert oversold.subject_key == "P3" and oversold.detail.facts["Units oversold"] == 2
    email = render_alert(oversold, Settings())
    assert "P3 sold 2 units more than its stock" in email.subject and "Units oversold" in email.text


def test_anomaly_detector_alerts_parse_as_anomaly_alerts():
    record = {
        "anomaly_id": "rapid_fire_amount:T1", "kind": "rapid_fire_amount", "user_id": "U42", "country": "UK",
        "transaction_ids": ["T1", "T2"], "first_event_time": AT, "last_event_time": AT.replace(minute=3),
        "amount": Decimal("12500.00"), "observed": 12500.0, "threshold": 10000.0, "score": 0.98,
        "description": "$12,500.00 spent by U42 in 2 transactions within 3.0 min", "last_received_at": AT,
    }
    (alert,) = (parse_alert(published(a, "anomaly_detector")) for a in anomaly_alerts([record], T))
    assert isinstance(alert, AnomalyAlert)
    assert alert.kind == "anomaly.rapid_fire_amount" and alert.subject_key == "U42"
    assert (alert.detail.amount, alert.detail.transaction_ids, alert.detail.score) == (12500.0, ["T1", "T2"], 0.98)
    assert alert.detail.last_event_time == AT.replace(minute=3)


def test_sessions_spike_alerts_parse_as_abandonment_spikes():
    (alert,) = (parse_alert(published(a, "sessions")) for a in spike_alerts([(AT, 27, Decimal("2345.60"))], T))
    assert isinstance(alert, AbandonmentSpikeAlert)
    assert (alert.detail.hour, alert.detail.abandoned_carts_so_far, alert.detail.threshold) == (AT, 27, 20)
    assert alert.subject_key == "2026-11-20T10:00:00+00:00"


def valid_stock_message() -> dict:
    return {
        "alert_id": "stock:P1:low:c0ffee:7", "app": "inventory_tracker", "kind": "stock.low", "severity": "warning",
        "subject": "Low stock: P1 has 8 left (below 10)",
        "detail": {"product_id": "P1", "stock": 8, "state_before": "ok", "state": "low", "threshold": 10},
        "event_time": "2026-11-20T10:00:00Z", "created_at": "2026-11-20T10:00:01.5Z",
    }


@pytest.mark.parametrize(("change", "reason"), [
    (lambda m: "{not json", "Invalid JSON"),
    (lambda m: m | {"kind": "weather.rain"}, "kind must be a string starting with one of stock., anomaly."),
    (lambda m: {k: v for k, v in m.items() if k != "kind"}, "kind must be a string starting with"),
    (lambda m: m | {"kind": "stock.critical"}, "kind stock.critical does not match detail.state 'low'"),
    (lambda m: m | {"detail": m["detail"] | {"stock": "eight"}}, "detail.stock: Input should be a valid integer"),
    (lambda m: m | {"event_time": "2026-11-20T10:00:00"}, "event_time: Input should have timezone info"),
    (lambda m: m | {"severity": "panic"}, "severity: Input should be 'info', 'warning' or 'critical'"),
    (lambda m: m | {"alert_id": ""}, "alert_id: String should have at least 1 character"),
    (lambda m: [m], "kind must be a string starting with"),
])
def test_malformed_messages_are_refused_with_a_reason(change, reason):
    changed = change(valid_stock_message())
    payload = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(MalformedAlert) as refused:
        parse_alert(payload.encode())
    assert reason in refused.value.reason
    assert refused.value.payload == payload.encode()


def test_empty_message_is_malformed():
    for payload in (None, b""):
        with pytest.raises(MalformedAlert, match="empty message"):
            parse_alert(payload)


def test_anomaly_kind_must_match_its_rule_but_new_rules_are_accepted():
    message = {
        "alert_id": "anomaly:night_owl:T9", "app": "anomaly_detector", "kind": "anomaly.night_owl", "severity": "warning",
        "subject": "x", "event_time": "2026-11-20T03:00:00Z", "created_at": "2026-11-20T03:00:01Z",
        "detail": {"anomaly_id": "night_owl:T9", "kind": "night_owl", "user_id": "U9", "country": "USA",
                   "transaction_ids": ["T9"], "first_event_time": "2026-11-20T03:00:00Z",
                   "last_event_time": "2026-11-20T03:00:00Z", "amount": 10.0, "observed": 1.0, "threshold": 1.0,
                   "score": 0.9, "description": "bought at 3 am"},
    }
    assert parse_alert(json.dumps(message)).kind == "anomaly.night_owl"
    with pytest.raises(MalformedAlert, match="does not match detail.kind 'night_owl'"):
        parse_alert(json.dumps(message | {"kind": "anomaly.high_value"}))


def test_unknown_fields_are_ignored():
    message = valid_stock_message()
    message["detail"]["warehouse"] = "Leeds"
    message["trace_id"] = "abc"
    assert parse_alert(json.dumps(message)).detail.stock == 8
