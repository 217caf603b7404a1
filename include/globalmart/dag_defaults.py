"""Defaults every GlobalMart DAG shares: owner, retries, failure email."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from globalmart.settings import Settings

OWNER = "globalmart-data-eng"


def failure_notifier(settings: Settings) -> SmtpNotifier:
    """One email per failed task to the alert recipients, through the smtp_default connection."""
    return SmtpNotifier(
        to=settings.smtp.alert_recipients,
        from_email=settings.smtp.sender,
        smtp_conn_id="smtp_default",
        subject="[GlobalMart] task failed: {{ ti.dag_id }}.{{ ti.task_id }} ({{ run_id }})",
    )


def default_args(settings: Settings, **overrides) -> dict:
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "on_failure_callback": failure_notifier(settings),
        **overrides,
    }
