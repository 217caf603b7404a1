"""``QualityGateSparkSubmitOperator``: spark-submit of a daily-batch quality gate.

A gate that fails has found bad data: running it again finds the same, and would email the
same failures again. So a failed gate (its result saved under the staging area, see
``globalmart.warehouse.sources``) fails the task at once, without retries; anything else
that stops the spark-submit (a lost executor, a busy machine) is retried as usual.
"""

from __future__ import annotations

from datetime import date

from airflow.sdk.exceptions import AirflowFailException
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator


class QualityGateSparkSubmitOperator(SparkSubmitOperator):
    """``gate``: the gate's name (``raw_day`` or ``outputs``); ``start``/``end``: the days it
    validates (templated, ISO dates)."""

    template_fields = (*SparkSubmitOperator.template_fields, "start", "end")

    def __init__(self, *, gate: str, start: str, end: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gate, self.start, self.end = gate, start, end

    def execute(self, context):
        try:
            return super().execute(context)
        except Exception:
            from globalmart.settings import get_settings

            failed = self.failed_days(get_settings())
            if failed:
                raise AirflowFailException(
                    f"{self.gate} gate failed for {', '.join(failed)}: nothing published; the failing expectations "
                    "are in this log above and were emailed") from None
            raise

    def failed_days(self, settings) -> list[str]:
        """The days of this run whose gate result says failed."""
        from globalmart.warehouse.sources import days_between, load_gate_result

        days = days_between(date.fromisoformat(self.start), date.fromisoformat(self.end))
        results = (load_gate_result(settings, day, self.gate) for day in days)
        return [result["day"] for result in results if result is not None and not result["success"]]
