"""GlobalMart's dashboards: ``streamlit run dashboards/app.py`` (the platform runs it as a service).

The login comes first: no page runs until the user has signed in with the dashboard user and
its generated password (``GLOBALMART_DASHBOARDS__PASSWORD`` in the secrets file).
"""

import streamlit as st

import dashboard_support as support

st.set_page_config(page_title="GlobalMart analytics", page_icon=":bar_chart:", layout="wide")

if not support.signed_in():
    support.login_form()
    st.stop()

VIEWS = support.VIEWS_DIR
navigation = st.navigation({
    "Real time": [
        st.Page(VIEWS / "live_sales.py", title="Live sales", icon=":material/monitoring:", default=True),
        st.Page(VIEWS / "anomalies.py", title="Anomalies", icon=":material/warning:"),
        st.Page(VIEWS / "inventory.py", title="Inventory", icon=":material/inventory_2:"),
        st.Page(VIEWS / "funnel.py", title="Funnel and abandonment", icon=":material/filter_alt:"),
    ],
    "Warehouse": [
        st.Page(VIEWS / "customers.py", title="Customers", icon=":material/group:"),
        st.Page(VIEWS / "products.py", title="Products and trends", icon=":material/trending_up:"),
    ],
    "Operations": [
        st.Page(VIEWS / "platform_health.py", title="Platform health", icon=":material/health_and_safety:"),
    ],
})
support.sidebar()
navigation.run()
