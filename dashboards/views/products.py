"""Products and trends: product performance and the daily / weekly / monthly sales trends with
growth and moving averages, from the MongoDB warehouse."""

import streamlit as st

import dashboard_support as support
from globalmart.readmodel import warehouse

st.title("Products and trends")
database = support.read_model().warehouse

st.header("Sales trends")
granularity_column, country_column, category_column = st.columns(3)
granularity = granularity_column.radio("Period", warehouse.TREND_GRANULARITIES, horizontal=True)
country = country_column.text_input("Country", warehouse.ALL)
category = category_column.text_input("Category", warehouse.ALL)
trends = warehouse.sales_trends(database, granularity, country.strip() or warehouse.ALL,
                                category.strip() or warehouse.ALL, limit=120)
support.source_line(trends)
if trends.rows:
    table = support.frame(trends, ["period_start", "period_end", "revenue", "revenue_growth", "revenue_moving_avg",
                                   "transactions", "transactions_growth", "transactions_moving_avg", "units",
                                   "avg_order_value"])
    st.line_chart(table.set_index("period_start")[["revenue", "revenue_moving_avg"]])
    st.dataframe(table, hide_index=True,
                 column_config={"revenue_growth": st.column_config.NumberColumn(format="percent"),
                                "transactions_growth": st.column_config.NumberColumn(format="percent")})

st.header("Product performance")
days = warehouse.product_dates(database)
support.source_line(days)
if days.rows:
    day_column, metric_column = st.columns(2)
    day = day_column.selectbox("Day", [row["date"] for row in days.rows], format_func=lambda d: f"{d:%Y-%m-%d}")
    metric = metric_column.selectbox("Top performers by", warehouse.PERFORMANCE_METRICS)
    top = warehouse.top_performers(database, metric, day.date(), limit=20)
    shown = list(dict.fromkeys(["rank", "product_id", "category", metric, "total_revenue", "units_sold", "orders",
                                "views", "conversion_rate"]))
    st.dataframe(support.frame(top, shown), hide_index=True)
    ranking_category = st.text_input("A category's ranking", placeholder="e.g. Electronics > Phones")
    if ranking_category:
        ranking = warehouse.product_performance(database, day.date(), ranking_category.strip(), limit=100)
        support.source_line(ranking)
        st.dataframe(support.frame(ranking, ["rank_in_category", "product_id", "total_revenue", "units_sold",
                                             "performance_score"]), hide_index=True)
