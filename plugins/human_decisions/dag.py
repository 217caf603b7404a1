"""The two decision DAGs (``restock_decision``, ``fraud_review``): one shape, two kinds.

Each DAG file calls :func:`decision_dag` for its kind; the logic is in ``globalmart.decisions``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task
from human_decisions.operators import DecisionOperator

from globalmart.dag_defaults import default_args
from globalmart.decisions.policy import DECIDE_TASK, FRAUD, OPTIONS, RESTOCK, default_option
from globalmart.settings import Settings

TITLES = {RESTOCK: "Restock decision", FRAUD: "Fraud review"}


def _texts(settings: Settings) -> tuple[dict, dict]:
    decisions = settings.decisions
    opened_by = {
        RESTOCK: f"a critical-stock alert (a product moved below {settings.thresholds.critical_stock} units)",
        FRAUD: f"an anomaly alert scoring at least {decisions.fraud_review_score}",
    }
    what_happens = {
        RESTOCK: "**Reorder** sends a restock of the quantity in the form (suggested from the product's sales of "
                 f"the last {decisions.sales_lookback_hours:g} h) to the Kafka topic `{settings.kafka.inventory.name}` "
                 "through the generator's contract and producer, so the stock rises in `inventory_stock` when the "
                 "inventory tracker reads it; **Ignore** sends nothing.",
        FRAUD: "**Confirm fraud**, **Mark legitimate** or **Hold customer**: the answer is stored on the anomaly "
               "(`decisions`, shown with the anomaly in the read API) and counted per rule by "
               "`scripts/detection_quality.py --reviews`.",
    }
    return opened_by, what_happens


def decision_dag(kind: str, settings: Settings) -> DAG:
    """The DAG of ``kind`` (restock or fraud), its id from settings."""
    decisions = settings.decisions
    dag_id = decisions.restock_dag_id if kind == RESTOCK else decisions.fraud_dag_id
    opened_by, what_happens = _texts(settings)
    with DAG(
        dag_id=dag_id,
        schedule=None,  # each run is one decision, started by the alerts DAG
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=decisions.max_open,
        is_paused_upon_creation=False,
        default_args=default_args(settings),
        tags=["alerts", "decisions", "human-in-the-loop"],
        doc_md=f"""
### {TITLES[kind]}

Each run is one decision, opened by {opened_by[kind]} and linked from its alert email. Answer it
on **Browse → Required Actions** (or the REST API: `PATCH /api/v2/dags/{dag_id}/dagRuns/<run>/taskInstances/{DECIDE_TASK}/-1/hitlDetails`
with `chosen_options` and `params_input`). Options: {", ".join(OPTIONS[kind])}.

{what_happens[kind]}

**Rules** (`globalmart.decisions.policy`): one open decision per {"product" if kind == RESTOCK else "anomaly"};
a later alert about it joins it; none again within {decisions.throttle_minutes} min of the last one
closing; at most {decisions.max_open} open. Unanswered after {decisions.response_timeout_minutes:g} min,
the scheduler closes it as **{default_option(kind, settings)}** and `record` emails
{", ".join(decisions.escalation_recipients)}. Every decision, with who answered and when, is in
PostgreSQL's `decisions` table. Settings: `GLOBALMART_DECISIONS__*`.
""",
    ) as dag:
        # a failed try is infrastructure (Airflow 3.3's resume race, a database hiccup): retried soon,
        # and the retry takes the answer the failed try had received
        decide = DecisionOperator(task_id=DECIDE_TASK, kind=kind, settings=settings,
                                  retry_delay=timedelta(seconds=5), retry_exponential_backoff=False)

        @task(retries=3, retry_delay=timedelta(seconds=30))
        def record(answer: dict, dag_run=None) -> dict:
            from airflow.sdk.timezone import utcnow

            from globalmart.decisions.service import close

            result = close(settings, dag_run.conf["decision_id"], answer, utcnow())
            print(f"decision {result['decision_id']}: {result['outcome']}"
                  + (f" ({result['quantity']} units)" if result.get("quantity") else "")
                  + (" — timed out, escalated" if result.get("timed_out") else f" by {result.get('decided_by')}"))
            return result

        record(decide.output)
    return dag

