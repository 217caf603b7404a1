"""The gate operator on a failed gate: the saved failures are emailed through the real SMTP
server and the task fails without retries."""

import uuid
from datetime import date

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from globalmart.quality_gates.gates import RAW_DAY_GATE, FailedExpectation, GateResult
from globalmart.warehouse import sources
from tests.mail_helpers import inbox_of

DAY = date(2026, 11, 20)
FAILURE = FailedExpectation(
    dataset="raw_transactions", expectation="expect_column_values_to_be_between", column="total_amount",
    expected={"min_value": 0}, observed_value=None, unexpected_count=2,
    unexpected_examples=[{"transaction_id": "T1", "total_amount": -5.0}], error=None)


def test_a_failed_gate_emails_its_failures_and_fails_the_task_without_retries(platform, tmp_path, monkeypatch):
    from globalmart_quality_gates import QualityGateSparkSubmitOperator

    recipient = f"gate-{uuid.uuid4().hex[:8]}@globalmart.local"
    private = platform.model_copy(update={
        "warehouse_dir": tmp_path, "alerting": platform.alerting.model_copy(update={"recipients": [recipient]})})
    monkeypatch.setattr("globalmart.settings.get_settings", lambda: private)
    docs_index = tmp_path / "data_docs" / "index.html"

    def gate_fails(self, context):  # what the gate's spark-submit leaves behind: its saved result, exit status 3
        sources.save_gate_result(private, GateResult(
            gate=RAW_DAY_GATE, day=DAY, success=False, evaluated=25, failures=[FAILURE], pages={},
            docs_index=docs_index))
        raise AirflowException("Cannot execute: spark-submit ... Error code is: 3.")

    monkeypatch.setattr(SparkSubmitOperator, "execute", gate_fails)
    operator = QualityGateSparkSubmitOperator(task_id="gate_raw", gate=RAW_DAY_GATE, start=DAY.isoformat(),
                                              end=DAY.isoformat(), application="job.py")
    with pytest.raises(AirflowFailException, match=f"raw_day gate failed for {DAY}: nothing published.*{recipient}"):
        operator.execute({})
    (email,) = inbox_of(private, recipient)
    assert f"raw-day gate failed for {DAY} (1 failed expectations)" in email["subject"]
    assert FAILURE.describe() in email["text"] and str(docs_index) in email["text"]
