"""Inventory: products in low and critical state, and one product's stock history."""

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import marts

st.title("Inventory")
thresholds = support.settings().thresholds
st.caption(f"Low: fewer than {thresholds.low_stock} units; critical: fewer than {thresholds.critical_stock}.")

with support.read_model().postgres() as conn:
    counts = marts.stock_state_counts(conn)
    short = marts.low_stock(conn, limit=500)

support.source_line(short)
by_state = {row["state"]: row["products"] for row in counts.rows}
critical, low = st.columns(2)
critical.metric("Critical", f"{by_state.get('critical', 0):,}")
low.metric("Low", f"{by_state.get('low', 0):,}")

if short.rows:
    st.dataframe(support.frame(short, ["state", "product_id", "name", "category", "stock", "units_sold",
                                       "units_restocked", "oversold_units", "last_event_time"]), hide_index=True)
    st.subheader("Stock history")
    product_id = st.selectbox("Product", [row["product_id"] for row in short.rows],
                              format_func=lambda pid: next(f"{pid} — {r['name'] or ''}" for r in short.rows
                                                           if r["product_id"] == pid))
    with support.read_model().postgres() as conn:
        history = marts.stock_history(conn, product_id, limit=500)
    support.source_line(history)
    if history.rows:
        st.line_chart(support.frame(history).set_index("last_event_time")[["stock_after"]])
        st.dataframe(support.frame(history, ["last_event_time", "stock_before", "units_sold", "units_restocked",
                                             "stock_after", "state_after"]), hide_index=True)
