"""The gate operator on a failed gate: the saved failures are emailed through the real SMTP
server and the task fails without retries."""

import uuid
from datetime import date

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from globalmart.warehouse import sources
from tests.mail_helpers import inbox_of

DAY = date(2026, 11, 20)
FAILURE = "raw_transactions.total_amount: expect_column_values_to_be_between (min_value=0) — 2 unexpected"


def test_a_failed_gate_emails_its_failures_and_fails_the_task_without_retries(platform, tmp_path, monkeypatch):
    from globalmart_quality_gates import QualityGateSparkSubmitOperator

    recipient = f"gate-{uuid.uuid4().hex[:8]}@globalmart.local"
    private = platform.model_copy(update={
        "warehouse_dir": tmp_path, "alerting": platform.alerting.model_copy(update={"recipients": [recipient]})})
    monkeypatch.setattr("globalmart.settings.get_settings", lambda: private)

    def gate_fails(self, context):  # what the spark-submit leaves behind: the saved result, exit status 3
        result = type("R", (), {"gate": "raw_day", "day": DAY, "success": False, "evaluated": 25, "pages": {},
                                "failures": [type("F", (), {"describe": lambda self: FAILURE})()],
                                "docs_index": tmp_path / "data_docs" / "index.html"})()
        sources.save_gate_result(private, result)
        raise AirflowException("Cannot execute: spark-submit ... Error code is: 3.")

    monkeypatch.setattr(SparkSubmitOperator, "execute", gate_fails)
    operator = QualityGateSparkSubmitOperator(task_id="gate_raw", gate="raw_day", start=DAY.isoformat(),
                                              end=DAY.isoformat(), application="job.py")
    with pytest.raises(AirflowFailException, match=f"raw_day gate failed for {DAY}: nothing published.*{recipient}"):
        operator.execute({})
    (email,) = inbox_of(private, recipient)
    assert f"raw-day gate failed for {DAY} (1 failed expectations)" in email["subject"]
    assert FAILURE in email["text"] and str(tmp_path / "data_docs" / "index.html") in email["text"]
