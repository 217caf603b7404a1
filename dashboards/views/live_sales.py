"""Live sales: revenue, transactions and average order value now, per country and category,
the top products of the current window; refreshes itself every few seconds."""

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import marts

st.title("Live sales")
config = support.settings().dashboards


@st.fragment(run_every=config.refresh_seconds)
def live() -> None:
    with support.read_model().postgres() as conn:
        recent = marts.sales_summary(conn, config.live_minutes)
        support.source_line(recent)
        if recent.as_of is None:
            return
        hour = marts.sales_summary(conn, 60)
        day = marts.sales_summary(conn, 24 * 60, "1h")
        series = marts.sales_series(conn, "1m", 60)
        by_country = marts.sales_breakdown(conn, "country", config.live_minutes)
        by_category = marts.sales_breakdown(conn, "category", config.live_minutes, limit=15)
        products = marts.top_products(conn, "1m", 10)

    for label, result in ((f"Last {config.live_minutes} minutes", recent), ("Last hour", hour),
                          ("Last 24 hours", day)):
        totals = result.rows[0]
        st.subheader(label)
        revenue, transactions, order_value = st.columns(3)
        revenue.metric("Revenue", support.money(totals["revenue"]))
        transactions.metric("Transactions", f"{totals['transactions']:,}")
        order_value.metric("Average order value", support.money(totals["avg_order_value"]))

    st.subheader("Revenue per minute, last hour")
    if series.rows:
        st.line_chart(support.frame(series).set_index("window_start")[["revenue"]])

    country_column, category_column = st.columns(2)
    with country_column:
        st.subheader(f"By country, last {config.live_minutes} minutes")
        if by_country.rows:
            st.bar_chart(support.frame(by_country).set_index("country")[["revenue"]], horizontal=True)
            st.dataframe(support.frame(by_country), hide_index=True)
    with category_column:
        st.subheader(f"Top categories, last {config.live_minutes} minutes")
        if by_category.rows:
            st.bar_chart(support.frame(by_category).set_index("category")[["revenue"]], horizontal=True)

    start, end = products.details.get("from"), products.details.get("to")
    st.subheader("Top products of the current window" + (f" ({start:%H:%M}–{end:%H:%M} UTC)" if start else ""))
    support.source_line(products)
    st.dataframe(support.frame(products, ["rank", "product_id", "name", "category", "revenue", "units",
                                          "transactions"]), hide_index=True)


live()
