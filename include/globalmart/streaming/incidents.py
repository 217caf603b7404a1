"""Streaming incidents: one email when a problem starts, one when it clears.

An incident is a row of ``stream_incidents`` (migration 0006): a subject (an app, or the
process hosting apps), a problem (down / stalled / lagging), when it opened and closed. At
most one incident per subject and problem is open (a partial unique index), so however many
checks, supervisors or triggerer restarts see the same problem, one INSERT wins and one email
goes out. The email is sent inside the transaction that opens (or closes) the row: a failed
send rolls the row back and the next check tries again.

Functions take a DB-API connection (the hook owns it) and a ``send`` callable for the email.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html import escape

from globalmart.alerting.rendering import RenderedEmail

Send = Callable[[RenderedEmail], None]

PROBLEM_TITLES = {"down": "is down", "stalled": "is stalled", "lagging": "is lagging"}

OPEN = """
INSERT INTO stream_incidents (subject, problem, reason, figures, opened_by)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (subject, problem) WHERE closed_at IS NULL DO NOTHING
RETURNING incident_id, opened_at
"""

CLOSE = """
UPDATE stream_incidents SET closed_at = now(), closed_by = %s
WHERE subject = %s AND problem = %s AND closed_at IS NULL
RETURNING incident_id, opened_at, closed_at, reason, figures
"""

def stopped_cleanly(conn, apps: Iterable[str], since: datetime) -> bool:
    """Whether every query of ``apps`` reported a clean stop (not a failure) after ``since``:
    what a stop on request leaves, and a killed process does not."""
    with conn.cursor() as cur:
        cur.execute("SELECT status, last_seen_at FROM stream_status WHERE app = ANY(%s)", (list(apps),))
        rows = cur.fetchall()
    return bool(rows) and all(status == "stopped" and seen >= since for status, seen in rows)


def open_incident(conn, subject: str, problem: str, reason: str, figures: dict, opened_by: str, send: Send,
                  subject_prefix: str = "[GlobalMart]") -> int | None:
    """Open an incident and email it; None (and no email) when one is already open."""
    try:
        with conn.cursor() as cur:
            cur.execute(OPEN, (subject, problem, reason, json.dumps(figures, default=str), opened_by))
            row = cur.fetchone()
        if row is not None:
            send(incident_email(row[0], subject, problem, reason, figures, row[1], opened_by, subject_prefix))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return row[0] if row else None


def close_incident(conn, subject: str, problem: str, closed_by: str, send: Send,
                   subject_prefix: str = "[GlobalMart]") -> int | None:
    """Close the open incident and email the recovery; None when none is open."""
    try:
        with conn.cursor() as cur:
            cur.execute(CLOSE, (closed_by, subject, problem))
            row = cur.fetchone()
        if row is not None:
            incident_id, opened_at, closed_at, reason, figures = row
            send(recovery_email(incident_id, subject, problem, reason, opened_at, closed_at, subject_prefix,
                                figures or {}))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return row[0] if row else None


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _html(headline: str, colour: str, facts: list[tuple[str, str]], advice: str) -> str:
    rows = "".join(
        f'<tr><th style="text-align:left;padding:4px 12px 4px 0;color:#52606d;font-weight:normal;vertical-align:top">'
        f'{escape(label)}</th><td style="padding:4px 0">{escape(value)}</td></tr>'
        for label, value in facts
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head>'
        '<body style="font-family:Arial,Helvetica,sans-serif;color:#1f2933">'
        f'<h2 style="background:{colour};color:#fff;padding:12px 16px;margin:0">{escape(headline)}</h2>'
        f'<table style="border-collapse:collapse;margin:12px 16px">{rows}</table>'
        f'<p style="margin:12px 16px">{escape(advice)}</p>'
        '<p style="margin:12px 16px;font-size:12px;color:#6b7280">Sent by the GlobalMart streaming_pipeline supervisor.</p>'
        "</body></html>"
    )


def _text(headline: str, facts: list[tuple[str, str]], advice: str) -> str:
    width = max(len(label) for label, _ in facts)
    lines = [headline, ""] + [f"{label.ljust(width)}  {value}" for label, value in facts] + ["", advice]
    return "\n".join(lines) + "\n"


ADVICE = {
    "down": "The supervisor restarts a dead app from its checkpoints (its Spark task retries with backoff). "
            "If this email is not followed by a recovery email, look at the streaming_pipeline DAG's "
            "run_* task log in Airflow.",
    "stalled": "The app is alive but makes no progress while input waits. Look at its Spark task log; "
               "the 'restart_streaming_app' DAG restarts it cleanly from its checkpoints.",
    "lagging": "The app falls behind its Kafka topics. It may catch up on its own; if the lag keeps "
               "growing, give Spark more cores or run the apps as separate applications.",
}


def _what(subject: str, problem: str, figures: dict) -> str:
    """"sales_metrics is down: sales_metrics.windows": the subject, and what in it is affected."""
    affected = [name for name in figures.get("affected", []) if name != subject]
    return f"{subject} {PROBLEM_TITLES.get(problem, problem)}" + (f": {', '.join(affected)}" if affected else "")


def incident_email(incident_id: int, subject: str, problem: str, reason: str, figures: dict, opened_at: datetime,
                   opened_by: str, subject_prefix: str = "[GlobalMart]") -> RenderedEmail:
    headline = f"Streaming incident #{incident_id}: {_what(subject, problem, figures)}"
    facts = [("Incident", f"#{incident_id}"), ("Subject", subject), ("Problem", problem), ("Since", _moment(opened_at)),
             ("Reason", reason), ("Detected by", opened_by)]
    facts += [(key.replace("_", " ").capitalize(), json.dumps(value, default=str) if not isinstance(value, str) else value)
              for key, value in sorted(figures.items())]
    advice = ADVICE.get(problem, "")
    return RenderedEmail(subject=f"{subject_prefix} {headline}", html=_html(headline, "#c81e1e", facts, advice),
                         text=_text(headline, facts, advice))


def recovery_email(incident_id: int, subject: str, problem: str, reason: str, opened_at: datetime,
                   closed_at: datetime, subject_prefix: str = "[GlobalMart]", figures: dict | None = None) -> RenderedEmail:
    minutes = (closed_at - opened_at).total_seconds() / 60
    headline = f"Resolved: streaming incident #{incident_id}: {_what(subject, problem, figures or {})}"
    facts = [("Incident", f"#{incident_id}"), ("Subject", subject), ("Problem", problem),
             ("Opened", _moment(opened_at)), ("Resolved", _moment(closed_at)), ("Lasted", f"{minutes:.1f} min"),
             ("Reason it opened", reason)]
    advice = "The supervisor sees the app healthy again."
    return RenderedEmail(subject=f"{subject_prefix} {headline}", html=_html(headline, "#0e7c3a", facts, advice),
                         text=_text(headline, facts, advice))
