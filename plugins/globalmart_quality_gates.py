"""``QualityGateSparkSubmitOperator``: spark-submit of a daily-batch quality gate.

The Spark job validates and saves each day's result under the staging area (see
``globalmart.warehouse.sources``); when a gate fails, this operator emails the failing
expectations (through Airflow's SMTP connection, which the spark-submit cannot reach) and
fails the task at once, without retries: running the gate again finds the same bad data.
Anything else that stops the spark-submit (a lost executor, a busy machine) is retried as usual.
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
            from globalmart.warehouse.emails import send_failed_gate
            from globalmart.warehouse.sources import days_between

            settings = get_settings()
            days = days_between(date.fromisoformat(self.start), date.fromisoformat(self.end))
            failed, email = send_failed_gate(self.gate, days, settings)
            if failed:
                raise AirflowFailException(
                    f"{self.gate} gate failed for {', '.join(result['day'] for result in failed)}: nothing published; "
                    f"the failing expectations are in this log above and were emailed to "
                    f"{', '.join(settings.alerting.recipients)} ({email.subject!r})") from None
            raise
