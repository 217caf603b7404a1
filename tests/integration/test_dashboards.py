"""The dashboards (Streamlit's AppTest runs each page's script) on the real PostgreSQL and
FerretDB: the login, every page with seeded data and with none."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from globalmart.settings import env_overrides
from tests.readmodel_fixtures import CRITICAL_PRODUCT, REVENUE_PER_MINUTE, private_warehouse, seed_marts, seed_warehouse

DASHBOARDS = Path(__file__).parents[2] / "dashboards"
PAGES = ["live_sales", "anomalies", "inventory", "funnel", "customers", "products", "platform_health"]


@pytest.fixture
def empty_env(stream_env, monkeypatch):
    """The pages read settings from the environment, as the service does: point it at the sandbox."""
    monkeypatch.syspath_prepend(str(DASHBOARDS))
    with private_warehouse(stream_env) as settings:
        for name, value in env_overrides(settings).items():
            monkeypatch.setenv(name, value)
        yield settings


@pytest.fixture
def seeded_env(empty_env):
    seed_marts(empty_env)
    seed_warehouse(empty_env)
    return empty_env


def run_page(name: str) -> AppTest:
    page = AppTest.from_file(str(DASHBOARDS / "views" / f"{name}.py"), default_timeout=30).run()
    assert not page.exception, [error.value for error in page.exception]
    return page


def test_login_is_required_and_opens_live_sales(empty_env):
    app = AppTest.from_file(str(DASHBOARDS / "app.py"), default_timeout=30).run()
    assert [field.label for field in app.text_input] == ["User", "Password"]
    assert not app.metric and not app.dataframe

    app.text_input[1].input("not-the-password")
    app.button[0].click().run()
    assert [error.value for error in app.error] == ["Wrong user or password."]

    app.text_input[1].input(empty_env.dashboards.password.get_secret_value())
    app.button[0].click().run()
    assert not app.exception, [error.value for error in app.exception]
    assert app.title[0].value == "Live sales"
    assert app.info[0].value.startswith("no data yet: run traffic")


@pytest.mark.parametrize("name", PAGES)
def test_every_page_says_what_to_run_when_its_sources_are_empty(empty_env, name):
    page = run_page(name)
    messages = [info.value for info in page.info]
    assert messages and all(m.startswith("no data yet: run ") or m.startswith("no ") for m in messages), messages
    assert all(caption.value.startswith("Source: ") for caption in page.caption if "Source" in caption.value)


def test_pages_show_the_seeded_figures(seeded_env):
    live = run_page("live_sales")
    figures = {metric.label: metric.value for metric in live.metric[:3]}
    assert figures == {"Revenue": f"${3 * REVENUE_PER_MINUTE:,.2f}", "Transactions": "21",
                       "Average order value": "$214.39"}
    assert "Source: PostgreSQL mart sales_window_metrics" in live.caption[0].value
    assert list(live.dataframe[-1].value["name"]) == ["Pocket Phone X", "Chef Knife"]

    anomalies = run_page("anomalies")
    assert sorted(anomalies.dataframe[0].value["kind"]) == ["high_value", "unusual_quantity"]

    inventory = run_page("inventory")
    assert [metric.value for metric in inventory.metric] == ["1", "1"]
    assert list(inventory.dataframe[0].value["product_id"])[0] == CRITICAL_PRODUCT
    assert list(inventory.dataframe[1].value["stock_after"]) == [3, 6]

    funnel = run_page("funnel")
    assert [metric.value for metric in funnel.metric][:5] == ["3", "3", "2", "1", "1"]

    customers = run_page("customers")
    assert list(customers.dataframe[0].value["segment"]) == ["Champions", "At Risk"]

    products = run_page("products")
    assert list(products.dataframe[0].value["revenue"]) == [1250.0, 1000.0]
    assert list(products.dataframe[1].value["product_id"]) == ["P000001", "P000002"]

    health = run_page("platform_health")
    assert list(health.dataframe[0].value["lag_records"]) == [35]
    assert list(health.dataframe[1].value["problem"]) == ["stalled"]
