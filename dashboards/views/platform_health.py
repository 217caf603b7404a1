"""Platform health: each streaming query's state, lag and last batch, incidents, dead letters
per hour with their reasons, the last runs of each DAG."""

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import airflow, marts

st.title("Platform health")
config = support.settings()


@st.fragment(run_every=config.dashboards.refresh_seconds * 2)
def streaming() -> None:
    with support.read_model().postgres() as conn:
        queries = marts.stream_queries(conn)
        incidents = marts.incidents(conn)
        dead_letters = marts.dead_letters_hourly(conn)
    st.subheader("Streaming queries")
    support.source_line(queries)
    if queries.rows:
        st.dataframe(support.frame(queries, ["app", "query_name", "status", "last_seen_at", "last_batch_id",
                                             "last_batch_at", "last_batch_rows", "input_rows_per_second",
                                             "processed_rows_per_second", "lag_records", "error"]), hide_index=True)
    st.subheader("Incidents (open, and the last day's)")
    support.source_line(incidents)
    if incidents.rows:
        st.dataframe(support.frame(incidents, ["open", "subject", "problem", "reason", "opened_at", "closed_at"]),
                     hide_index=True)
    st.subheader("Dead letters per hour")
    support.source_line(dead_letters)
    if dead_letters.rows:
        table = support.frame(dead_letters)
        st.bar_chart(table.groupby(["hour", "source_topic"])["records"].sum().unstack(fill_value=0))
        st.dataframe(table, hide_index=True)


streaming()

st.subheader("Last runs of each DAG")
runs = airflow.last_runs(config, config.dashboards.airflow_runs_per_dag)
support.source_line(runs)
if runs.rows:
    st.dataframe(support.frame(runs), hide_index=True)
