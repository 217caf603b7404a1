"""Screenshots of every dashboard page with data, and of the Airflow UI's navigation entry that
links to them (run by hand; writes PNGs to docs/screenshots/).

The marts of a sandbox database are seeded with a day of 1-minute windows and the known rows of
the tests, the warehouse with the tests' documents; a Streamlit server of its own (the
platform's command, on a free loopback port) shows them. Debian's chromium, headless, is driven
through the DevTools protocol (``tests/devtools_browser.py``): it signs in, opens each page from
the sidebar as a user does, and captures it. The navigation entry is the running platform's
Airflow UI (``make run``), signed in as its admin: Plugins → GlobalMart analytics.

With ``--live`` the real-time pages are captured from the platform's own dashboards service
instead, showing whatever the live marts hold (run traffic and the streaming apps first:
docs/walkthrough.md); they are written as ``live_<page>.png``.

    .venv/bin/python scripts/capture_dashboard_screenshots.py            # both
    .venv/bin/python scripts/capture_dashboard_screenshots.py --only airflow
    .venv/bin/python scripts/capture_dashboard_screenshots.py --live
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from globalmart.generator.categories import CATEGORIES  # noqa: E402
from globalmart.platform.services import service_by_name  # noqa: E402
from globalmart.settings import Settings, env_overrides, load_settings  # noqa: E402
from globalmart.streaming.sandbox import sandbox  # noqa: E402
from tests.devtools_browser import (  # noqa: E402
    STREAMLIT_SETTLED, Browser, chromium, free_port, sign_in_to_dashboards, wait_http,
)
from tests.readmodel_fixtures import private_warehouse, seed_day_of_windows, seed_marts, seed_warehouse  # noqa: E402

OUTPUT = PROJECT_ROOT / "docs" / "screenshots"
PAGES = {  # sidebar title → file name
    "Live sales": "live_sales", "Anomalies": "anomalies", "Inventory": "inventory",
    "Funnel and abandonment": "funnel", "Customers": "customers", "Products and trends": "products",
    "Platform health": "platform_health",
}


LIVE_PAGES = ["Live sales", "Anomalies", "Inventory", "Funnel and abandonment", "Platform health"]


async def capture_dashboards(browser: Browser, url: str, user: str, password: str, titles: list[str] | None = None,
                             prefix: str = "dashboard") -> None:
    await sign_in_to_dashboards(browser, url, user, password)
    await browser.wait_for("document.querySelectorAll('[data-testid=stSidebarNav] a').length >= 7")
    for title, name in PAGES.items():
        if titles is not None and title not in titles:
            continue
        await browser.click_text("[data-testid=stSidebarNav] a", title)
        await browser.wait_for(f"[...document.querySelectorAll('h1')].some(h => h.innerText.includes({json.dumps(title)}))")
        await asyncio.sleep(2)  # the charts draw after the script's last element arrives
        await browser.wait_for(STREAMLIT_SETTLED)
        size = await browser.capture(OUTPUT / f"{prefix}_{name}.png")
        print(f"  {title}: docs/screenshots/{prefix}_{name}.png ({size // 1024} KiB)")


async def capture_airflow_navigation(browser: Browser, settings: Settings) -> None:
    """The Airflow UI signed in as its admin, the Plugins menu open on GlobalMart analytics."""
    airflow = settings.airflow
    await browser.navigate(f"{airflow.url}/")
    await browser.type_into("input[name=username]", airflow.admin_user)
    await browser.type_into("input[name=password]", airflow.admin_password.get_secret_value())
    await browser.click_text("button", "Sign in")
    await browser.wait_for("[...document.querySelectorAll('button')].some(e => e.innerText.trim() == 'Plugins')")
    await browser.wait_for("[...document.querySelectorAll('h2, h1')].some(e => e.innerText.includes('Welcome'))")
    await browser.click_text("button", "Plugins")
    await browser.wait_for("[...document.querySelectorAll('[role=menuitem]')]"
                           ".some(e => e.innerText.includes('GlobalMart analytics'))")
    await browser.click_text("[role=menuitem]", "GlobalMart analytics")
    links = await browser.wait_for(
        "(() => { const links = [...document.querySelectorAll('[role=menu] a')].map(a => a.innerText.trim());"
        " return links.includes('Dashboards') && links.includes('Read API docs') && links; })()")
    size = await browser.capture(OUTPUT / "airflow_navigation.png")
    print(f"  Airflow navigation ({', '.join(links)}): docs/screenshots/airflow_navigation.png ({size // 1024} KiB)")


def capture_all_dashboards(settings: Settings) -> None:
    with sandbox(settings, "screenshots") as (marts_env, folder), private_warehouse(marts_env) as env:
        seed_marts(env)
        seed_day_of_windows(env, settings.catalog.countries, [category.full_name for category in CATEGORIES])
        seed_warehouse(env)
        port = free_port()
        dashboards = env.model_copy(update={"dashboards": env.dashboards.model_copy(update={"port": port})})
        with open(folder / "dashboards.log", "wb") as log:
            server = subprocess.Popen(service_by_name(dashboards, "dashboards").command,
                                      env={**os.environ, **env_overrides(env)}, cwd=PROJECT_ROOT,
                                      stdout=log, stderr=log)
        try:
            wait_http(f"http://127.0.0.1:{port}/_stcore/health")

            async def run() -> None:
                with chromium() as page_socket:
                    async with Browser(page_socket) as browser:
                        await capture_dashboards(browser, f"http://127.0.0.1:{port}", env.dashboards.user,
                                                 env.dashboards.password.get_secret_value())

            asyncio.run(run())
        finally:
            server.terminate()
            server.wait(timeout=30)


def capture_live(settings: Settings) -> None:
    """The real-time pages as the platform's dashboards service shows them now."""
    wait_http(f"{settings.dashboards.url}/_stcore/health", seconds=10)

    async def run() -> None:
        with chromium() as page_socket:
            async with Browser(page_socket) as browser:
                await capture_dashboards(browser, settings.dashboards.url, settings.dashboards.user,
                                         settings.dashboards.password.get_secret_value(), LIVE_PAGES, "live")

    asyncio.run(run())


def capture_airflow(settings: Settings) -> None:
    wait_http(f"{settings.airflow.url}/api/v2/monitor/health", seconds=10)

    async def run() -> None:
        with chromium() as page_socket:
            async with Browser(page_socket) as browser:
                await capture_airflow_navigation(browser, settings)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["dashboards", "airflow"], help="capture only these")
    parser.add_argument("--live", action="store_true", help="the real-time pages of the platform's dashboards")
    args = parser.parse_args()
    settings = load_settings()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    if args.live:
        capture_live(settings)
        return
    if args.only in (None, "dashboards"):
        capture_all_dashboards(settings)
    if args.only in (None, "airflow"):
        capture_airflow(settings)


if __name__ == "__main__":
    main()
