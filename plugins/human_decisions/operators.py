"""The decision form: Airflow's HITL operator, filled in from the decision the run is about.

The DAG is parsed once for every decision, so the form's subject, body, suggested quantity and
timeout are set when the task runs, from the ``decisions`` row named by the run's conf
(``decision_id``). On Airflow 3.3 the task then waits in the ``awaiting_input`` state (no
worker slot, no trigger): the answer comes from the Required Actions page or the REST API
(``PATCH …/taskInstances/decide/-1/hitlDetails``), and the scheduler applies the default
option when the timeout passes. Both are in the metadata database, so a restart of any Airflow
process keeps the open decision.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

from globalmart.decisions.policy import OPTIONS, QUANTITY_PARAM, RESTOCK, default_option
from globalmart.settings import Settings

TIMEOUT_CONF = "response_timeout_minutes"  # a run's conf may shorten (or lengthen) the settings' timeout


class DecisionOperator(HITLOperator):
    """A restock decision (Reorder with a quantity / Ignore) or a fraud review (Confirm fraud /
    Mark legitimate / Hold customer) about the decision ``dag_run.conf["decision_id"]``."""

    def __init__(self, *, kind: str, settings: Settings, **kwargs) -> None:
        params = {}
        if kind == RESTOCK:
            params[QUANTITY_PARAM] = Param(
                settings.decisions.min_restock_quantity, type="integer", minimum=1,
                maximum=settings.contracts.max_restock_quantity, title="Units to reorder",
                description="The suggestion from recent sales; change it if needed (used only by Reorder).")
        super().__init__(
            subject=f"{kind} decision",  # replaced by the decision's own when the task runs
            options=list(OPTIONS[kind]),
            defaults=[default_option(kind, settings)],
            multiple=False,
            params=params,
            response_timeout=timedelta(minutes=settings.decisions.response_timeout_minutes),
            **kwargs,
        )
        self.kind = kind
        self.settings = settings

    def execute(self, context):
        from airflow.sdk.timezone import utcnow

        from globalmart.decisions.service import prepare_form

        conf = context["dag_run"].conf or {}
        decision_id = conf.get("decision_id")
        if not decision_id:
            raise ValueError("this run has no decision_id in its conf: decisions are opened by the alerts DAG")
        earlier = self._answer_of_an_earlier_try(context, decision_id)
        if earlier is not None:
            return earlier
        form = prepare_form(self.settings, decision_id, utcnow())
        self.subject, self.body = form.subject, form.body
        self.response_timeout = form.response_timeout
        if conf.get(TIMEOUT_CONF) is not None:
            self.response_timeout = timedelta(minutes=float(conf[TIMEOUT_CONF]))
        if self.kind == RESTOCK and form.suggested_quantity:
            self.params[QUANTITY_PARAM] = form.suggested_quantity
        self.log.info("decision %s waits for an answer (timeout %s): %s", decision_id, self.response_timeout,
                      self.subject)
        return super().execute(context)

    def _answer_of_an_earlier_try(self, context, decision_id: str) -> dict | None:
        """The answer an earlier try received, if the decision is still open.

        Airflow 3.3 can fail a try that is resuming with an answer (an answer within a second of
        the task parking races the executor's report of the parked process: "TI was not in the
        running state", then up_for_retry). The retry would ask again, and its upsert of the
        form clears the answer: the person's decision would be lost. The answer is still on
        the task instance (one form per task instance, kept across tries) until this try
        writes its own, so it is taken from there (the REST API: a task's own execution API
        has no call for it)."""
        ti = context["ti"]
        if ti.try_number <= 1:
            return None
        from globalmart.decisions.service import earlier_answer

        return earlier_answer(self.settings, decision_id, ti.dag_id, ti.run_id, ti.task_id, ti.map_index)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)
        # the scheduler's timeout sweep answers with the defaults and no user
        return {**result, "timed_out": bool(event.get("timedout")) or not result.get("responded_by_user")}
