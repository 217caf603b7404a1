"""Screenshots of every dashboard page with data (run by hand; writes PNGs to docs/screenshots/).

The marts of a sandbox database are seeded with a day of 1-minute windows and the known rows of
the tests, the warehouse with the tests' documents; a Streamlit server of its own (the
platform's command, on a free loopback port) shows them. Debian's chromium, headless, is driven
through the DevTools protocol: it signs in, opens each page from the sidebar as a user does,
and captures it.

    .venv/bin/python scripts/capture_dashboard_screenshots.py
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from globalmart.generator.categories import CATEGORIES  # noqa: E402
from globalmart.platform.services import service_by_name  # noqa: E402
from globalmart.settings import env_overrides, load_settings  # noqa: E402
from globalmart.streaming.sandbox import sandbox  # noqa: E402
from tests.readmodel_fixtures import private_warehouse, seed_day_of_windows, seed_marts, seed_warehouse  # noqa: E402

OUTPUT = PROJECT_ROOT / "docs" / "screenshots"
PAGES = {  # sidebar title → file name
    "Live sales": "live_sales", "Anomalies": "anomalies", "Inventory": "inventory",
    "Funnel and abandonment": "funnel", "Customers": "customers", "Products and trends": "products",
    "Platform health": "platform_health",
}
VIEWPORT = (1400, 1000)
MAX_BYTES = 300_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def save_png(data: bytes, path: Path) -> int:
    """The capture as PNG, reduced to a 256-colour palette when it is over the size budget
    (dashboards are mostly flat colours: the palette loses nothing visible)."""
    if len(data) > MAX_BYTES:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256).save(buffer, "PNG", optimize=True)
        data = buffer.getvalue()
    path.write_bytes(data)
    return len(data)


class Browser:
    """One page of a headless chromium, driven over the DevTools protocol."""

    def __init__(self, socket_url: str):
        self._socket_url = socket_url
        self._ids = itertools.count(1)

    async def __aenter__(self):
        self._socket = await websockets.connect(self._socket_url, max_size=64 * 2**20)
        await self.send("Page.enable")
        await self.send("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                        deviceScaleFactor=1, mobile=False)
        return self

    async def __aexit__(self, *exc):
        await self._socket.close()

    async def send(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        await self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self._socket.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await self.evaluate(expression):
                return
            await asyncio.sleep(0.3)
        raise SystemExit(f"the page never satisfied: {expression}")

    async def type_into(self, selector: str, text: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        await self.send("Input.insertText", text=text)

    async def click_text(self, selector: str, text: str) -> None:
        """Clicks the first element whose text ends with ``text`` (an icon's name may lead it)."""
        clicked = await self.evaluate(
            f"(() => {{ const hit = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim().endsWith({json.dumps(text)})); if (hit) hit.click(); return !!hit; }})()")
        if not clicked:
            raise SystemExit(f"nothing to click: {selector} {text!r}")

    async def capture(self, path: Path) -> int:
        shot = await self.send("Page.captureScreenshot", format="png")
        return save_png(base64.b64decode(shot["data"]), path)


# Streamlit is done when its status widget no longer says it is running and no skeleton remains
STREAMLIT_SETTLED = ("!document.querySelector('[data-testid=\"stStatusWidget\"]') "
                     "&& !document.querySelector('[data-testid=\"stSkeleton\"]')")


async def capture_dashboards(browser: Browser, url: str, user: str, password: str) -> None:
    await browser.send("Page.navigate", url=url)
    await browser.wait_for("document.querySelectorAll('input').length >= 2")
    await browser.type_into("input[type=text]", user)
    await browser.type_into("input[type=password]", password)
    await browser.click_text("button", "Sign in")
    await browser.wait_for("document.querySelectorAll('[data-testid=stSidebarNav] a').length >= 7")
    for title, name in PAGES.items():
        await browser.click_text("[data-testid=stSidebarNav] a", title)
        await browser.wait_for(f"[...document.querySelectorAll('h1')].some(h => h.innerText.includes({json.dumps(title)}))")
        await asyncio.sleep(2)  # the charts draw after the script's last element arrives
        await browser.wait_for(STREAMLIT_SETTLED)
        size = await browser.capture(OUTPUT / f"dashboard_{name}.png")
        print(f"  {title}: docs/screenshots/dashboard_{name}.png ({size // 1024} KiB)")


def main() -> None:
    settings = load_settings()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is missing: apt-get install -y chromium")
    profile = Path(tempfile.mkdtemp(prefix="globalmart_screenshots_"))
    with sandbox(settings, "screenshots") as (marts_env, folder), private_warehouse(marts_env) as env:
        seed_marts(env)
        seed_day_of_windows(env, settings.catalog.countries, [category.full_name for category in CATEGORIES])
        seed_warehouse(env)
        port, debug_port = free_port(), free_port()
        dashboards = env.model_copy(update={"dashboards": env.dashboards.model_copy(update={"port": port})})
        processes = []
        try:
            with open(folder / "dashboards.log", "wb") as log:
                processes.append(subprocess.Popen(service_by_name(dashboards, "dashboards").command,
                                                  env={**os.environ, **env_overrides(env)}, cwd=PROJECT_ROOT,
                                                  stdout=log, stderr=log))
            processes.append(subprocess.Popen(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--remote-debugging-port={debug_port}", "--remote-debugging-address=127.0.0.1",
                 f"--user-data-dir={profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_http(f"http://127.0.0.1:{port}/_stcore/health")
            wait_http(f"http://127.0.0.1:{debug_port}/json/version")
            target = next(t for t in httpx.get(f"http://127.0.0.1:{debug_port}/json/list").json() if t["type"] == "page")

            async def run() -> None:
                async with Browser(target["webSocketDebuggerUrl"]) as browser:
                    await capture_dashboards(browser, f"http://127.0.0.1:{port}", env.dashboards.user,
                                             env.dashboards.password.get_secret_value())

            asyncio.run(run())
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
