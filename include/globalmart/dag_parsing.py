"""Parse the project's DAG files the way Airflow's DAG processor does."""

from __future__ import annotations

from pathlib import Path

from globalmart.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


def parse_dag_files():
    """A DagBag of every project DAG file (import errors are in ``bag.import_errors``)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR), collect_dags=False)
    for path in dag_files():
        bag.process_file(str(path))
    return bag
