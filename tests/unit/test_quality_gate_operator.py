"""The gate operator: a failed gate fails the task without retries, other spark-submit failures retry."""

from datetime import date

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from globalmart.warehouse import sources

DAY = date(2026, 11, 20)


@pytest.fixture
def gate(settings, tmp_path, monkeypatch):
    from globalmart_quality_gates import QualityGateSparkSubmitOperator

    private = settings.model_copy(update={"warehouse_dir": tmp_path})
    monkeypatch.setattr("globalmart.settings.get_settings", lambda: private)

    def spark_submit_fails(self, context):
        raise AirflowException("Cannot execute: spark-submit ... Error code is: 3.")

    monkeypatch.setattr(SparkSubmitOperator, "execute", spark_submit_fails)
    operator = QualityGateSparkSubmitOperator(task_id="gate_raw", gate="raw_day", start=DAY.isoformat(),
                                              end=DAY.isoformat(), application="job.py")
    return operator, private


def save(settings, success: bool):
    result = type("R", (), {"gate": "raw_day", "day": DAY, "success": success, "evaluated": 3, "pages": {},
                            "failures": [], "docs_index": settings.warehouse_dir / "index.html"})()
    sources.save_gate_result(settings, result)


def test_a_failed_gate_fails_the_task_without_retries(gate):
    operator, settings = gate
    save(settings, success=False)
    with pytest.raises(AirflowFailException, match="raw_day gate failed for 2026-11-20"):
        operator.execute({})


def test_any_other_failure_is_raised_as_is_for_a_retry(gate):
    operator, settings = gate
    with pytest.raises(AirflowException, match="Error code is: 3") as raised:
        operator.execute({})
    assert not isinstance(raised.value, AirflowFailException)
    save(settings, success=True)  # a gate that passed, then a crash: retried too
    with pytest.raises(AirflowException) as raised:
        operator.execute({})
    assert not isinstance(raised.value, AirflowFailException)
