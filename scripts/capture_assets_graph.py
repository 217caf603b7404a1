"""Screenshot of the Airflow UI's Assets graph of a warehouse collection: where it comes from,
from the Kafka topics through the raw archiver and the lake to daily_batch's publish
(``globalmart.assets``). Run by hand against the running platform (``make run``), signed in as
its admin; writes ``docs/screenshots/airflow_assets_<asset>.png``.

    .venv/bin/python scripts/capture_assets_graph.py [--asset warehouse.dim_customer]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from globalmart.settings import Settings, load_settings  # noqa: E402
from tests.devtools_browser import Browser, chromium, wait_http  # noqa: E402

OUTPUT = PROJECT_ROOT / "docs" / "screenshots"
# the graph of a warehouse collection, traced upstream: kafka.* → run_bulk → lake.* → publish → it
# (and the catalog, the sensor certifying the lake's days, the other collections publish writes)
MIN_NODES = 11


def asset_id(settings: Settings, name: str) -> int:
    airflow = settings.airflow
    token = httpx.post(f"{airflow.url}/auth/token", json={
        "username": airflow.admin_user, "password": airflow.admin_password.get_secret_value()}).json()["access_token"]
    found = httpx.get(f"{airflow.url}/api/v2/assets", params={"name_pattern": name},
                      headers={"Authorization": f"Bearer {token}"}).json()["assets"]
    (asset,) = [a for a in found if a["name"] == name]
    return asset["id"]


async def capture(browser: Browser, settings: Settings, name: str) -> Path:
    airflow = settings.airflow
    await browser.navigate(f"{airflow.url}/")
    await browser.type_into("input[name=username]", airflow.admin_user)
    await browser.type_into("input[name=password]", airflow.admin_password.get_secret_value())
    await browser.click_text("button", "Sign in")
    await browser.wait_for("[...document.querySelectorAll('h2, h1')].some(e => e.innerText.includes('Welcome'))")
    await browser.navigate(f"{airflow.url}/assets/{asset_id(settings, name)}")
    await browser.wait_for("document.querySelectorAll('.react-flow__node').length > 0")
    # the task-level lineage (inlets and outlets), not the Dags that schedule on the asset
    await browser.click_text("button", "Task Dependencies")
    await browser.wait_for("document.querySelectorAll('.react-flow__node').length >= 3")
    await asyncio.sleep(1)
    await browser.evaluate("document.querySelector('.react-flow__controls-fitview').click()")  # the whole graph in view
    shown = "[...document.querySelectorAll('.react-flow__node')].map(e => e.innerText)"
    await browser.wait_for(f"(() => {{ const nodes = {shown}; return nodes.length >= {MIN_NODES}"
                           " && ['kafka.transactions', 'publish', " + json.dumps(name) + "]"
                           ".every(label => nodes.some(node => node.includes(label))); })()")
    await asyncio.sleep(1)  # the graph's layout animates into place
    path = OUTPUT / f"airflow_assets_{name.replace('.', '_')}.png"
    size = await browser.capture(path)
    nodes = await browser.evaluate("[...document.querySelectorAll('.react-flow__node')].map(e => e.innerText.trim())")
    print(f"  {name}: {len(nodes)} nodes ({'; '.join(n.replace(chr(10), ' ') for n in nodes)})")
    print(f"  {path.relative_to(PROJECT_ROOT)} ({size // 1024} KiB)")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asset", default="warehouse.dim_customer", help="the asset whose graph to capture")
    args = parser.parse_args()
    settings = load_settings()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    wait_http(f"{settings.airflow.url}/api/v2/monitor/health", seconds=10)

    async def run() -> None:
        with chromium(viewport=(1600, 900)) as page_socket:
            async with Browser(page_socket) as browser:
                await capture(browser, settings, args.asset)

    asyncio.run(run())


if __name__ == "__main__":
    main()
