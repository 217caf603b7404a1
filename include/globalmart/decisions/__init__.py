"""Human-in-the-loop decisions on alerts, answered in Airflow's Required Actions (issue 21).

- :mod:`.policy` decides, purely, which alerts open a decision (one open per product or
  anomaly, throttled, capped), the suggested reorder and what an answer means;
- :mod:`.store` keeps the decisions in PostgreSQL (``decisions``), so they survive restarts;
- :mod:`.rendering` writes the form, its link and the escalation email;
- :mod:`.restock` sends an approved reorder through the generator's contract and producer;
- :mod:`.service` runs them for the alerts DAG and the decision DAGs;
- :mod:`.quality` turns fraud reviews into the detection-quality report per rule.
"""
