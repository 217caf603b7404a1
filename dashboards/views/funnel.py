"""Funnel and abandonment: sessions → carts → checkouts → purchases per hour, abandoned carts."""

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import marts

st.title("Funnel and abandonment")
hours = st.slider("Hours", 1, 72, 24)

with support.read_model().postgres() as conn:
    funnel = marts.funnel(conn, hours)
    abandonment = marts.abandonment_hourly(conn, hours)
    carts = marts.abandoned_carts(conn, limit=100)

STAGES = ["sessions", "viewed", "carted", "checked_out", "purchased"]
st.subheader("Sessions by the hour they started")
support.source_line(funnel)
if funnel.rows:
    table = support.frame(funnel)
    totals = table[STAGES].sum()
    for column, stage in zip(st.columns(len(STAGES)), STAGES):
        share = f"{totals[stage] / totals['sessions']:.1%} of sessions" if totals["sessions"] else None
        column.metric(stage.replace("_", " "), f"{totals[stage]:,}", share, delta_color="off")
    st.bar_chart(table.set_index("hour")[STAGES[1:]], stack=False)
    st.dataframe(table, hide_index=True)

st.subheader("Abandoned carts per hour")
support.source_line(abandonment)
if abandonment.rows:
    table = support.frame(abandonment)
    carts_total, value_total = st.columns(2)
    carts_total.metric("Abandoned carts", f"{table['abandoned_carts'].sum():,}")
    value_total.metric("Their value", support.money(table["abandoned_value"].sum()))
    st.bar_chart(table.set_index("hour")[["abandoned_value"]])
    st.subheader("Latest abandoned carts")
    st.dataframe(support.frame(carts, ["abandoned_at", "user_id", "country", "items", "cart_value", "categories"]),
                 hide_index=True)
