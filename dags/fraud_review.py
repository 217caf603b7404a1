"""Fraud reviews: a high-score anomaly asks a person to confirm fraud, mark it legitimate or hold the customer.

One Airflow DAG run per review, waiting on the Required Actions page; wiring in
``plugins/human_decisions/dag.py``, rules in ``globalmart.decisions``.
"""

from __future__ import annotations

from human_decisions.dag import decision_dag

from globalmart.decisions.policy import FRAUD
from globalmart.settings import get_settings

dag = decision_dag(FRAUD, get_settings())
