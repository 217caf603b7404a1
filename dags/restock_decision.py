"""Restock decisions: a critical-stock alert asks a person to reorder (with a suggested quantity) or ignore.

One Airflow DAG run per decision, waiting on the Required Actions page; wiring in
``plugins/human_decisions/dag.py``, rules in ``globalmart.decisions``.
"""

from __future__ import annotations

from human_decisions.dag import decision_dag

from globalmart.decisions.policy import RESTOCK
from globalmart.settings import get_settings

dag = decision_dag(RESTOCK, get_settings())
