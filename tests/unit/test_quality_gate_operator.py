"""The gate operator: a spark-submit failure that is not a failed gate is raised as is, for a retry.

(A failed gate, which emails and fails without retries, is tested against the real SMTP
server in tests/integration/test_quality_gate_email.py.)"""

from datetime import date

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from globalmart.warehouse import sources

DAY = date(2026, 11, 20)


def test_any_other_failure_is_raised_as_is_for_a_retry(settings, tmp_path, monkeypatch):
    from globalmart_quality_gates import QualityGateSparkSubmitOperator

    private = settings.model_copy(update={"warehouse_dir": tmp_path})
    monkeypatch.setattr("globalmart.settings.get_settings", lambda: private)

    def spark_submit_fails(self, context):
        raise AirflowException("Cannot execute: spark-submit ... Error code is: 1.")

    monkeypatch.setattr(SparkSubmitOperator, "execute", spark_submit_fails)
    operator = QualityGateSparkSubmitOperator(task_id="gate_raw", gate="raw_day", start=DAY.isoformat(),
                                              end=DAY.isoformat(), application="job.py")
    with pytest.raises(AirflowException, match="Error code is: 1") as raised:
        operator.execute({})
    assert not isinstance(raised.value, AirflowFailException)
    result = type("R", (), {"gate": "raw_day", "day": DAY, "success": True, "evaluated": 3, "pages": {},
                            "failures": [], "docs_index": tmp_path / "index.html"})()
    sources.save_gate_result(private, result)  # a gate that passed, then a crash: retried too
    with pytest.raises(AirflowException) as raised:
        operator.execute({})
    assert not isinstance(raised.value, AirflowFailException)
