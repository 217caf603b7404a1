"""Anomalies: the latest, with score, kind, user and amount; filtered by kind, time and score."""

from datetime import datetime, timedelta, timezone

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import marts

st.title("Anomalies")
PERIODS = {"last hour": timedelta(hours=1), "last 6 hours": timedelta(hours=6), "last 24 hours": timedelta(days=1),
           "last 7 days": timedelta(days=7), "all": None}

kinds_column, period_column, score_column = st.columns([2, 1, 1])
kinds = kinds_column.multiselect("Kind", marts.ANOMALY_KINDS, placeholder="every kind")
period = period_column.selectbox("Detected in", list(PERIODS), index=2)
min_score = score_column.slider("Minimum score", 0.0, 1.0, 0.0, 0.05)
since = datetime.now(timezone.utc) - PERIODS[period] if PERIODS[period] else None

with support.read_model().postgres() as conn:
    counts = marts.anomaly_counts(conn, since=since)
    latest = marts.anomalies(conn, kinds=kinds, since=since, min_score=min_score, limit=500)

support.source_line(latest)
if counts.rows:
    st.subheader(f"Per kind, {period}")
    columns = st.columns(len(counts.rows))
    for column, row in zip(columns, counts.rows):
        column.metric(row["kind"].replace("_", " "), f"{row['anomalies']:,}", f"{support.money(row['amount'])} in total",
                      delta_color="off")
if latest.rows:
    st.subheader("Latest" + (" (first 500)" if latest.has_more else ""))
    # review_*: the fraud review answered in Airflow's Required Actions (restock_decision / fraud_review DAGs)
    st.dataframe(support.frame(latest, ["last_event_time", "kind", "score", "user_id", "country", "amount",
                                        "description", "review_status", "review_outcome", "reviewed_by",
                                        "transaction_ids"]), hide_index=True,
                 column_config={"score": st.column_config.ProgressColumn("score", min_value=0, max_value=1),
                                "amount": st.column_config.NumberColumn("amount", format="$%.2f")})
