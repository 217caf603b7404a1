"""Customers: RFM segment sizes and value per analysis date, one customer's history."""

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import warehouse

st.title("Customers")
database = support.read_model().warehouse
dates = warehouse.rfm_dates(database)
support.source_line(dates)
if dates.rows:
    analysis_date = st.selectbox("Analysis date", [row["analysis_date"] for row in dates.rows],
                                 format_func=lambda day: f"{day:%Y-%m-%d}")
    segments = warehouse.rfm_segments(database, analysis_date)
    st.subheader("Segments")
    left, right = st.columns(2)
    table = support.frame(segments)
    left.bar_chart(table.set_index("segment")[["customers"]], horizontal=True)
    right.bar_chart(table.set_index("segment")[["monetary"]], horizontal=True)
    st.dataframe(table, hide_index=True, column_config={"share": st.column_config.NumberColumn(format="percent")})

    history = warehouse.rfm_segment_history(database)
    if len(dates.rows) > 1:
        st.subheader("Segment sizes over the analysis dates")
        st.line_chart(support.frame(history).pivot(index="analysis_date", columns="segment", values="customers"))

    st.subheader("One customer")
    user_id = st.text_input("User id", placeholder="e.g. U00001234")
    if user_id:
        customer = warehouse.customer_history(database, user_id.strip())
        if customer.rows:
            st.dataframe(support.frame(customer, ["analysis_date", "rfm_segment", "recency", "frequency", "monetary",
                                                  "r_score", "f_score", "m_score", "last_purchase_date"]),
                         hide_index=True)
        else:
            st.info(f"{user_id} has no RFM score: no purchase in the look-back window of any analysis date")
