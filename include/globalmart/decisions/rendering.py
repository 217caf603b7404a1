"""What a person reads: the decision form (subject and Markdown body on the Required Actions
page), the link to it, and the escalation email of a decision nobody answered in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from globalmart.alerting.rendering import RenderedEmail, kind_title
from globalmart.decisions.policy import DECIDE_TASK, OPTIONS, RESTOCK, default_option
from globalmart.decisions.store import Decision
from globalmart.settings import Settings


def _utc(moment: datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(amount) -> str:
    return f"${float(amount):,.2f}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def ui_base(settings: Settings) -> str:
    return (settings.decisions.ui_base_url or settings.airflow.url).rstrip("/")


def decision_url(settings: Settings, dag_id: str, decision_id: str) -> str:
    """The decision's form on the Required Actions page (the run id is the decision id)."""
    return (f"{ui_base(settings)}/dags/{quote(dag_id)}/runs/{quote(decision_id)}/tasks/{DECIDE_TASK}/required_actions?"
            + urlencode({"map_index": -1}))


def required_actions_url(settings: Settings) -> str:
    """Every decision waiting for an answer."""
    return f"{ui_base(settings)}/required_actions?response_received=false"


def product_label(facts: dict) -> str:
    name = facts.get("product_name")
    return f"{_one_line(name)} ({facts['product_id']})" if name else facts["product_id"]


def form_subject(decision: Decision) -> str:
    f = decision.facts
    if decision.kind == RESTOCK:
        return _one_line(f"Restock {product_label(f)}? {f['stock']} left (critical below {f['threshold']})")
    return _one_line(f"Fraud review: {kind_title('anomaly.' + f['rule']).lower()} by {f['user_id']}, "
                     f"{_money(f['amount'])} (score {float(f['score']):.2f})")


def _md(text) -> str:
    """Facts come from messages: no Markdown or HTML of their own on the page."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>" else c for c in _one_line(text))


def form_body(decision: Decision, settings: Settings, units_sold: int | None = None) -> str:
    f = decision.facts
    timeout = timedelta(minutes=settings.decisions.response_timeout_minutes)
    rows: list[tuple[str, str]]
    if decision.kind == RESTOCK:
        rows = [("Product", product_label(f)), ("Category", f.get("category") or "not in the catalog"),
                ("Stock at the alert", f"{f['stock']} units (critical below {f['threshold']})"),
                ("Alert time", _utc(f.get("alert_time")))]
        if units_sold is not None:
            rows.append((f"Sold in the last {settings.decisions.sales_lookback_hours:g} h", f"{units_sold} units"))
        rows.append(("Suggested reorder", f"{decision.suggested_quantity} units "
                     f"({settings.decisions.cover_hours:g} h of recent sales + back to {settings.thresholds.low_stock})"))
        intro = ("**Reorder** sends a restock of the quantity below to the warehouse (an `inventory` event): "
                 "the stock rises in the marts when it arrives. Change the quantity if needed. "
                 "**Ignore** sends nothing.")
    else:
        shown = ", ".join(f["transaction_ids"][:5]) + (f" and {len(f['transaction_ids']) - 5} more"
                                                        if len(f["transaction_ids"]) > 5 else "")
        rows = [("Rule", kind_title("anomaly." + f["rule"])), ("User", f["user_id"]), ("Country", f["country"]),
                ("Amount", _money(f["amount"])), ("Score", f"{float(f['score']):.2f}"),
                ("Description", f["description"]), ("Transactions", f"{len(f['transaction_ids'])}: {shown}"),
                ("Time", f"{_utc(f['first_event_time'])} to {_utc(f['last_event_time'])}")]
        intro = ("**Confirm fraud**, **Mark legitimate** or **Hold customer** (hold the customer's orders "
                 "until someone looks closer). The answer is stored on the anomaly and counts in the "
                 "detection-quality report per rule.")
    table = "\n".join(f"| {_md(label)} | {_md(value)} |" for label, value in rows)
    default = default_option(decision.kind, settings)
    return (f"{intro}\n\n| | |\n|---|---|\n{table}\n\n"
            f"Unanswered after {_duration(timeout)} it is escalated by email to "
            f"{', '.join(settings.decisions.escalation_recipients)} and closed as **{default}**. "
            f"Decision `{decision.decision_id}`.")


def _duration(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes / 60:g} h"
    return f"{minutes:g} min"


def alert_link_text(kind: str) -> str:
    return "Decide: reorder or ignore" if kind == RESTOCK else "Review: confirm fraud, legitimate or hold"


def escalation_email(decision: Decision, outcome: str, settings: Settings) -> RenderedEmail:
    """Sent when a decision timed out: who should have answered, what was decided by default."""
    option = next(o for o, value in OPTIONS[decision.kind].items() if value == outcome)
    what = form_subject(decision)
    subject = _one_line(f"{settings.alerting.subject_prefix} Escalation: no answer to \"{what}\", closed as {option}")
    url = decision_url(settings, decision.dag_id, decision.decision_id)
    waited = _duration(timedelta(minutes=settings.decisions.response_timeout_minutes))
    text = (f"Nobody answered this decision within {waited}:\n\n  {what}\n\n"
            f"It was opened {_utc(decision.opened_at)} and has been closed with the default outcome: {option}.\n"
            + ("No restock was sent: reorder by hand if the product still needs one.\n"
               if decision.kind == RESTOCK and outcome != "reorder" else "")
            + f"\nThe decision in Airflow: {url}\nDecision {decision.decision_id}.\n")
    from html import escape

    html = (f"<p>Nobody answered this decision within {escape(waited)}:</p>"
            f"<p><strong>{escape(what)}</strong></p>"
            f"<p>It was opened {escape(_utc(decision.opened_at))} and has been closed with the default outcome: "
            f"<strong>{escape(option)}</strong>.</p>"
            + ("<p>No restock was sent: reorder by hand if the product still needs one.</p>"
               if decision.kind == RESTOCK and outcome != "reorder" else "")
            + f'<p><a href="{escape(url)}">The decision in Airflow</a> · decision {escape(decision.decision_id)}</p>')
    return RenderedEmail(subject=subject, html=html, text=text)
