"""Sending an alert email through Airflow's SMTP provider.

The SMTP server comes from the Airflow connection ``alerting.smtp_conn_id`` (``smtp_default``:
the local inbox locally, a relay in production); sender and recipients come from settings.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from airflow.providers.common.compat.sdk import AirflowException, AirflowNotFoundException
from airflow.providers.smtp.hooks.smtp import SmtpHook

from globalmart.alerting.rendering import RenderedEmail
from globalmart.settings import Settings


class SmtpConnectionMissing(AirflowException):
    """The SMTP connection named in settings is not defined in Airflow."""


class AlertSmtpHook(SmtpHook):
    """The provider's hook (connection, TLS, login, connect retries) sending a ready-made message:
    its ``send_email_smtp`` builds an HTML-only one, and alert emails carry a text part too."""

    @classmethod
    def get_connection(cls, conn_id: str):
        try:
            return super().get_connection(conn_id)
        except AirflowNotFoundException as missing:
            # the provider would only say "SMTP connection is not found."
            raise SmtpConnectionMissing(
                f"SMTP connection {conn_id!r} is not defined in Airflow: add it (Admin > Connections, or the "
                f"environment variable AIRFLOW_CONN_{conn_id.upper()}) or set GLOBALMART_ALERTING__SMTP_CONN_ID "
                "to an existing SMTP connection"
            ) from missing

    def send_message(self, message: EmailMessage) -> None:
        self._smtp_client.send_message(message)


def build_message(email: RenderedEmail, sender: str, recipients: list[str]) -> EmailMessage:
    """multipart/alternative: the plain-text part first, the HTML part (preferred by mail clients) last."""
    message = EmailMessage()
    message["Subject"] = email.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].partition("@")[2] or None)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


def send(email: RenderedEmail, settings: Settings) -> None:
    """Send ``email`` to ``alerting.recipients`` through the ``alerting.smtp_conn_id`` connection."""
    message = build_message(email, settings.smtp.sender, settings.alerting.recipients)
    with AlertSmtpHook(smtp_conn_id=settings.alerting.smtp_conn_id) as hook:
        hook.send_message(message)
