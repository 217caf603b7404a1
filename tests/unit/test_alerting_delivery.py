"""The email as sent: multipart/alternative with both parts; a missing SMTP connection is named."""

import email
from email import policy

import pytest

from globalmart.alerting.delivery import SmtpConnectionMissing, build_message, send
from globalmart.alerting.rendering import RenderedEmail
from globalmart.settings import AlertingSettings, Settings

EMAIL = RenderedEmail(subject="[GlobalMart] Critical stock: P1 has 3 left (below 5)",
                      html="<p>P1 has <b>3</b> left — reorder</p>", text="P1 has 3 left — reorder\n")


def test_message_is_text_then_html_alternatives():
    message = build_message(EMAIL, "GlobalMart Alerts <alerts@globalmart.local>", ["a@x.test", "b@x.test"])
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Subject"] == EMAIL.subject
    assert parsed["To"] == "a@x.test, b@x.test"
    assert parsed["Message-ID"].endswith("@globalmart.local>")
    assert parsed.get_body(("plain",)).get_content() == EMAIL.text
    assert parsed.get_body(("html",)).get_content().strip() == EMAIL.html


def test_a_missing_smtp_connection_is_named_in_the_error():
    settings = Settings().model_copy(update={"alerting": AlertingSettings(smtp_conn_id="smtp_nowhere")})
    with pytest.raises(SmtpConnectionMissing, match="'smtp_nowhere' is not defined in Airflow.*AIRFLOW_CONN_SMTP_NOWHERE"):
        send(EMAIL, settings)
