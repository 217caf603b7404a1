"""The decision DAGs as Airflow parses them: the HITL form's options, default, quantity, timeout."""

from __future__ import annotations

from datetime import timedelta

import pytest

from globalmart.dag_parsing import parse_dag_files
from globalmart.decisions.policy import DECIDE_TASK, OPTIONS, QUANTITY_PARAM, default_option
from globalmart.settings import get_settings

SETTINGS = get_settings()


@pytest.fixture(scope="module")
def bag():
    return parse_dag_files()


@pytest.mark.parametrize("kind, dag_id", [("restock", SETTINGS.decisions.restock_dag_id),
                                          ("fraud", SETTINGS.decisions.fraud_dag_id)])
def test_each_run_is_one_form_then_its_record(bag, kind, dag_id):
    dag = bag.dags[dag_id]
    assert type(dag.timetable).__name__ == "NullTimetable"  # no schedule: started by the alerts DAG only
    assert not dag.is_paused_upon_creation and dag.max_active_runs == SETTINGS.decisions.max_open
    decide = dag.get_task(DECIDE_TASK)
    assert type(decide).__name__ == "DecisionOperator"
    assert decide.options == list(OPTIONS[kind]) and decide.multiple is False
    assert decide.defaults == [default_option(kind, SETTINGS)]
    assert decide.response_timeout == timedelta(minutes=SETTINGS.decisions.response_timeout_minutes)
    assert decide.downstream_task_ids == {"record"}
    if kind == "restock":
        schema = decide.params.get_param(QUANTITY_PARAM).schema
        assert (schema["type"], schema["minimum"], schema["maximum"]) == (
            "integer", 1, SETTINGS.contracts.max_restock_quantity)
    else:
        assert QUANTITY_PARAM not in decide.params
