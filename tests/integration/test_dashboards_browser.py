"""The dashboards in a real browser: Debian's chromium (DevTools protocol) signs in to a
dashboards server (the platform's command) reading a sandbox's marts with known rows, and
reads the figures the page shows; they must equal what the marts hold, summed here in SQL
of its own rather than through the read model, and follow the marts without a reload."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from globalmart import db
from globalmart.platform.services import service_by_name
from globalmart.settings import env_overrides
from tests.devtools_browser import (
    STREAMLIT_SETTLED, Browser, chromium, free_port, metrics_on_page, sign_in_to_dashboards, wait_http,
)
from tests.readmodel_fixtures import seed_marts

PROJECT_ROOT = Path(__file__).parents[2]


def marts_figures(settings) -> dict[str, str]:
    """What the Live sales and Inventory pages must show, from the marts' rows: the countries'
    totals (category ALL) of the windows in the last ``live_minutes`` before the newest one's end,
    formatted as the pages format them; the products low and critical."""
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("""
            WITH newest AS (SELECT max(window_end) AS window_end FROM sales_window_metrics WHERE granularity = '1m')
            SELECT sum(revenue), sum(transactions)
            FROM sales_window_metrics, newest
            WHERE granularity = '1m' AND category = 'ALL'
              AND window_start >= newest.window_end - make_interval(mins => %s)
        """, (settings.dashboards.live_minutes,))
        revenue, transactions = cur.fetchone()
        cur.execute("SELECT count(*) FILTER (WHERE state = 'critical'), count(*) FILTER (WHERE state = 'low') "
                    "FROM inventory_stock")
        critical, low = cur.fetchone()
    return {"Revenue": f"${revenue:,.2f}", "Transactions": f"{transactions:,}",
            "Average order value": f"${revenue / transactions:,.2f}", "Critical": f"{critical:,}", "Low": f"{low:,}"}


@pytest.fixture
def dashboards_url(stream_env, tmp_path):
    """A dashboards server of its own on a free loopback port, reading the seeded sandbox marts
    (the pages visited read no warehouse)."""
    seed_marts(stream_env)
    port = free_port()
    own = stream_env.model_copy(update={"dashboards": stream_env.dashboards.model_copy(update={"port": port})})
    log = open(tmp_path / "dashboards.log", "wb")  # noqa: SIM115 (open while the server runs)
    server = subprocess.Popen(service_by_name(own, "dashboards").command, cwd=PROJECT_ROOT,
                              env={**os.environ, **env_overrides(stream_env)}, stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        yield own, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_signed_in_user_sees_the_marts_figures(dashboards_url):
    settings, url = dashboards_url
    expected = marts_figures(settings)
    assert expected["Revenue"] != "$0.00"  # the seed wrote sales

    async def visit() -> tuple[list, list, list, bool]:
        with chromium() as page_socket:
            async with Browser(page_socket) as browser:
                # a wrong password shows the error and no figures
                await sign_in_to_dashboards(browser, url, settings.dashboards.user, "not-the-password")
                await browser.wait_for("document.body.innerText.includes('Wrong user or password.')")
                refused = await metrics_on_page(browser)

                await sign_in_to_dashboards(browser, url, settings.dashboards.user,
                                            settings.dashboards.password.get_secret_value())
                # Live sales is the first page; its figures arrive with its fragment
                await browser.wait_for("document.querySelectorAll('[data-testid=stMetric]').length >= 9", 90)
                await browser.wait_for(STREAMLIT_SETTLED)
                live = await metrics_on_page(browser)

                # a sale lands in the newest minute: the page shows it by itself, without a reload
                await browser.evaluate("window.sameDocument = true")
                with db.connect(settings) as conn, conn.cursor() as cur:
                    cur.execute("UPDATE sales_window_metrics SET revenue = revenue + 1000 WHERE granularity = '1m' "
                                "AND category = 'ALL' AND country = 'USA' AND window_end = "
                                "(SELECT max(window_end) FROM sales_window_metrics WHERE granularity = '1m')")
                    assert cur.rowcount == 1
                refreshed = marts_figures(settings)["Revenue"]
                await browser.wait_for(
                    "[...document.querySelectorAll('[data-testid=stMetricValue]')].slice(0, 1)"
                    f".some(v => v.innerText.trim() == {json.dumps(refreshed)})",
                    10 * settings.dashboards.refresh_seconds)
                same_document = await browser.evaluate("window.sameDocument === true")

                await browser.click_text("[data-testid=stSidebarNav] a", "Inventory")
                await browser.wait_for("[...document.querySelectorAll('h1')].some(h => h.innerText.includes('Inventory'))"
                                       " && document.querySelectorAll('[data-testid=stMetric]').length == 2", 90)
                inventory = await metrics_on_page(browser)
                return refused, live, inventory, same_document

    refused, live, inventory, same_document = asyncio.run(visit())
    assert same_document  # not reloaded: the new figure came over the page's websocket
    assert refused == []
    # the first three figures are the last live_minutes (then the last hour, the last 24 hours)
    assert dict(live[:3]) == {label: expected[label] for label in ("Revenue", "Transactions", "Average order value")}
    assert dict(inventory) == {"Critical": expected["Critical"], "Low": expected["Low"]}
