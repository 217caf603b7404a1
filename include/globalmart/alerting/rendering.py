"""Alert emails: a subject, an HTML part and a plain-text part, for one alert or a digest.

Each email carries the facts a person acts on: product, category, stock, threshold and state
for stock alerts; user, amount, transactions, score, description and time for anomalies;
hour, count and threshold for abandonment spikes. A digest has one table per alert kind.
Times are shown in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from globalmart.alerting.messages import (
    SEVERITY_RANK,
    AbandonmentSpikeAlert,
    AlertMessage,
    AnomalyAlert,
    DataQualityAlert,
    StockAlert,
)
from globalmart.alerting.policy import Delivery
from globalmart.alerting.templates import TEMPLATES
from globalmart.settings import Settings

SEVERITY_COLOURS = {"critical": "#b42318", "warning": "#b54708", "info": "#175cd3"}
KIND_TITLES = {
    "stock.critical": "Critical stock",
    "stock.low": "Low stock",
    "anomaly.high_value": "High-value transaction",
    "anomaly.unusual_quantity": "Unusual quantity",
    "anomaly.rapid_fire_count": "Rapid-fire purchases",
    "anomaly.rapid_fire_amount": "Rapid-fire spending",
    "cart_abandonment.spike": "Cart abandonment spike",
    "data_quality.oversold": "Sold below zero stock",
    "data_quality.isolated_records": "Records isolated from a failing micro-batch",
}
TRANSACTION_IDS_SHOWN = 5
DIGEST_SUBJECT_KINDS = 3  # kinds counted in a digest's subject line; the rest are in the body

Fact = tuple[str, str]


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def kind_title(kind: str) -> str:
    """``anomaly.rapid_fire_count`` → "Rapid-fire purchases"; a kind without a title is spelled out."""
    return KIND_TITLES.get(kind) or kind.split(".", 1)[-1].replace("_", " ").capitalize()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _hour_range(hour: datetime) -> str:
    start = hour.astimezone(UTC)
    return f"{start:%Y-%m-%d %H:%M}–{start + timedelta(hours=1):%H:%M} UTC"


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def _score(score: float) -> str:
    return f"{score:.2f}"


_templates = Environment(
    loader=DictLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_templates.filters.update(utc=_utc, hour_range=_hour_range, money=_money, score=_score)


def _product(alert: StockAlert) -> str:
    d = alert.detail
    return f"{d.product_name} ({d.product_id})" if d.product_name else d.product_id


def _time_span(first: datetime, last: datetime) -> str:
    return _utc(last) if first == last else f"{_utc(first)} to {_utc(last)}"


def facts(alert: AlertMessage, settings: Settings) -> list[Fact]:
    """(label, value) of everything a person acts on, in reading order."""
    if isinstance(alert, StockAlert):
        d = alert.detail
        return [
            ("Product", _product(alert)),
            ("Category", d.category or "not in the catalog"),
            ("Stock", f"{d.stock} units"),
            ("Threshold", f"below {d.threshold}"),
            ("State", f"{d.state_before} → {d.state}"),
            ("Time", _utc(alert.event_time)),
        ]
    if isinstance(alert, AnomalyAlert):
        d = alert.detail
        shown = ", ".join(d.transaction_ids[:TRANSACTION_IDS_SHOWN])
        hidden = len(d.transaction_ids) - TRANSACTION_IDS_SHOWN
        return [
            ("User", d.user_id),
            ("Country", d.country),
            ("Amount", _money(d.amount)),
            ("Transactions", f"{len(d.transaction_ids)}: {shown}" + (f" and {hidden} more" if hidden > 0 else "")),
            ("Score", f"{_score(d.score)} (alerts from {_score(settings.thresholds.anomaly_alert_score)})"),
            ("Description", d.description),
            ("Time", _time_span(d.first_event_time, d.last_event_time)),
        ]
    if isinstance(alert, AbandonmentSpikeAlert):
        d = alert.detail
        return [
            ("Hour", _hour_range(d.hour)),
            ("Abandoned carts", f"{d.abandoned_carts_so_far} so far"),
            ("Abandoned value", _money(d.abandoned_value_so_far)),
            ("Threshold", f"more than {d.threshold} an hour"),
        ]
    if isinstance(alert, DataQualityAlert):
        return [*((label, str(value)) for label, value in alert.detail.facts.items()), ("Time", _utc(alert.event_time))]
    raise TypeError(f"no email layout for {type(alert).__name__}")


def _common(settings: Settings) -> dict:
    return {"prefix": settings.alerting.subject_prefix, "recipients": settings.alerting.recipients}


def _one_line(text: str) -> str:
    """Subjects are header values: one line, single spaces (facts come from messages)."""
    return " ".join(text.split())


def render_alert(alert: AlertMessage, settings: Settings, decision=None) -> RenderedEmail:
    """``decision``: the alert's human decision in Airflow (a ``DecisionLink``: url, text), if any."""
    context = _common(settings) | {
        "decision_url": decision.url if decision else None,
        "decision_text": decision.text if decision else None,
        "alert": alert,
        "d": alert.detail,
        "facts": facts(alert, settings),
        "colour": SEVERITY_COLOURS[alert.severity],
        "rule": kind_title(alert.kind).lower(),
    }
    if isinstance(alert, StockAlert):
        context |= {"product": _product(alert), "state_title": kind_title(alert.kind).split()[0]}
    for part in ("subject", "headline", "summary", "advice"):
        context[part] = _one_line(_templates.get_template(f"{alert.family}.{part}").render(context))
    return RenderedEmail(
        subject=context["subject"],
        html=_templates.get_template("single.html").render(context),
        text=_templates.get_template("single.txt").render(context),
    )


@dataclass(frozen=True)
class _DigestGroup:
    title: str
    colour: str
    columns: list[str]
    rows: list[list[str]]
    alerts_count: int
    severity_rank: int  # of the group's most severe alert

    @property
    def more(self) -> int:
        return self.alerts_count - len(self.rows)


def _digest_groups(alerts: Sequence[AlertMessage], settings: Settings) -> list[_DigestGroup]:
    """One group per kind, the most severe kinds first, each kind's alerts in time order."""
    by_kind = sorted(alerts, key=lambda a: (a.kind, a.event_time, a.alert_id))
    groups = []
    for kind, members in groupby(by_kind, key=lambda a: a.kind):
        members = list(members)
        worst = max((a.severity for a in members), key=SEVERITY_RANK.__getitem__)
        shown = [facts(a, settings) for a in members[: settings.alerting.digest_rows_per_kind]]
        groups.append(_DigestGroup(
            title=kind_title(kind),
            colour=SEVERITY_COLOURS[worst],
            columns=[label for label, _ in shown[0]],
            rows=[[value for _, value in row] for row in shown],
            alerts_count=len(members),
            severity_rank=SEVERITY_RANK[worst],
        ))
    return sorted(groups, key=lambda g: -g.severity_rank)  # stable: kinds of one severity stay in order


def render_digest(alerts: Sequence[AlertMessage], settings: Settings, decisions_url: str | None = None) -> RenderedEmail:
    """One email for many alerts: a table per alert kind (``decisions_url``: the decisions they opened)."""
    groups = _digest_groups(alerts, settings)
    counts = ", ".join(f"{g.title.lower()} {g.alerts_count}" for g in groups[:DIGEST_SUBJECT_KINDS])
    if len(groups) > DIGEST_SUBJECT_KINDS:
        counts += ", …"
    times = [a.event_time for a in alerts]
    context = _common(settings) | {
        "groups": groups,
        "alerts_count": len(alerts),
        "counts": counts,
        "first": min(times),
        "last": max(times),
        "colour": groups[0].colour,
        "decisions_url": decisions_url,
    }
    context["subject"] = _one_line(_templates.get_template("digest.subject").render(context))
    return RenderedEmail(
        subject=context["subject"],
        html=_templates.get_template("digest.html").render(context),
        text=_templates.get_template("digest.txt").render(context),
    )


def render_delivery(delivery: Delivery, settings: Settings, decisions: Mapping | None = None) -> RenderedEmail:
    """``decisions``: alert id → the human decision it opened or joined (see ``globalmart.decisions``)."""
    decisions = decisions or {}
    if delivery.is_digest:
        linked = any(alert.alert_id in decisions for alert in delivery.alerts)
        return render_digest(delivery.alerts, settings, _required_actions_url(settings) if linked else None)
    (alert,) = delivery.alerts
    return render_alert(alert, settings, decisions.get(alert.alert_id))


def _required_actions_url(settings: Settings) -> str:
    from globalmart.decisions.rendering import required_actions_url

    return required_actions_url(settings)
