"""Every DAG parses, follows the project's policy, and does no lookups at parse time."""

import json
import os
import subprocess
import sys

import pytest

from globalmart.dag_parsing import dag_files, parse_dag_files
from globalmart.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def dag_bag():
    bag = parse_dag_files()
    return bag


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert len(dag_bag.dags) >= 1


def test_every_file_defines_a_dag(dag_bag):
    files_with_dags = {os.path.basename(dag.fileloc) for dag in dag_bag.dags.values()}
    assert files_with_dags == {p.name for p in dag_files()}


@pytest.mark.parametrize("dag_id", [p.stem for p in dag_files()])
def test_dag_policy(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    assert dag.tags, "tags"
    assert dag.doc_md and len(dag.doc_md) > 100, "doc_md explains the DAG"
    for task in dag.tasks:
        assert task.owner == "globalmart-data-eng", task.task_id
        assert task.retries >= 2, task.task_id
        assert task.on_failure_callback, f"{task.task_id} has no failure notifier"
    for name, param in dag.params.items():
        assert param.schema.get("type"), f"param {name} is typed"
        assert param.description, f"param {name} is described"


def test_parsing_does_no_connection_or_variable_lookups(tmp_path):
    """Parse in a process whose only secrets backend raises and whose metadata DB is unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        AIRFLOW__SECRETS__BACKEND="tests.forbid_lookups.ForbidLookupsBackend",
        AIRFLOW__WORKERS__SECRETS_BACKEND="tests.forbid_lookups.ForbidLookupsBackend",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'absent' / 'no.db'}",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    script = (
        "import json; from globalmart.dag_parsing import parse_dag_files; bag = parse_dag_files();"
        "print(json.dumps({'dags': sorted(bag.dags), 'errors': {k: str(v)[-400:] for k, v in bag.import_errors.items()}}))"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"] == sorted(p.stem for p in dag_files())
