"""A real browser for tests and scripts: Debian's chromium, headless, driven over the DevTools
protocol (a websocket; no browser download, no extra package). Used by the dashboards'
browser test and the screenshot script."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import websockets

from globalmart.streaming.control import poll_until

VIEWPORT = (1400, 1000)
MAX_PNG_BYTES = 300_000

# Streamlit is done when its status widget no longer says it is running and no skeleton remains
STREAMLIT_SETTLED = ("!document.querySelector('[data-testid=\"stStatusWidget\"]') "
                     "&& !document.querySelector('[data-testid=\"stSkeleton\"]')")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    poll_until(f"{url} to answer", answers, seconds, every=0.25)


@contextmanager
def chromium(viewport: tuple[int, int] = VIEWPORT) -> Iterator[str]:
    """A headless chromium on a loopback debugging port; yields its first page's websocket URL."""
    binary = shutil.which("chromium")
    if binary is None:
        raise RuntimeError("chromium is missing: apt-get install -y chromium")
    profile = Path(tempfile.mkdtemp(prefix="globalmart_chromium_"))
    debug_port = free_port()
    process = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--remote-debugging-port={debug_port}", "--remote-debugging-address=127.0.0.1",
         f"--user-data-dir={profile}", f"--window-size={viewport[0]},{viewport[1]}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{debug_port}/json/version")
        targets = httpx.get(f"http://127.0.0.1:{debug_port}/json/list").json()
        yield next(target for target in targets if target["type"] == "page")["webSocketDebuggerUrl"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def save_png(data: bytes, path: Path) -> int:
    """The capture as PNG, reduced to a 256-colour palette when it is over the size budget
    (dashboards are mostly flat colours: the palette loses nothing visible)."""
    if len(data) > MAX_PNG_BYTES:
        from PIL import Image

        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256).save(buffer, "PNG", optimize=True)
        data = buffer.getvalue()
    path.write_bytes(data)
    return len(data)


class Browser:
    """One page of the browser, driven over the DevTools protocol."""

    def __init__(self, socket_url: str, viewport: tuple[int, int] = VIEWPORT):
        self._socket_url = socket_url
        self._viewport = viewport
        self._ids = itertools.count(1)

    async def __aenter__(self):
        self._socket = await websockets.connect(self._socket_url, max_size=64 * 2**20)
        await self.send("Page.enable")
        await self.send("Emulation.setDeviceMetricsOverride", width=self._viewport[0], height=self._viewport[1],
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

    async def wait_for(self, expression: str, seconds: float = 60):
        """The expression's first truthy value in the page, polled until ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied: {expression}")
            await asyncio.sleep(0.3)

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def type_into(self, selector: str, text: str) -> None:
        """Types as a user does: focus, select what is there, insert the text (key events)."""
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        await self.send("Input.insertText", text=text)

    async def click_text(self, selector: str, text: str) -> None:
        """Clicks the first element whose text ends with ``text`` (an icon's name may lead it)."""
        clicked = await self.evaluate(
            f"(() => {{ const hit = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim().endsWith({json.dumps(text)})); if (hit) hit.click(); return !!hit; }})()")
        if not clicked:
            raise LookupError(f"nothing to click: {selector} {text!r}")

    async def capture(self, path: Path) -> int:
        shot = await self.send("Page.captureScreenshot", format="png")
        return save_png(base64.b64decode(shot["data"]), path)


async def sign_in_to_dashboards(browser: Browser, url: str, user: str, password: str) -> None:
    """The dashboards' login form, filled and sent as a user does."""
    await browser.navigate(url)
    await browser.wait_for("document.querySelectorAll('input').length >= 2")
    await browser.type_into("input[type=text]", user)
    await browser.type_into("input[type=password]", password)
    await browser.click_text("button", "Sign in")


async def metrics_on_page(browser: Browser) -> list[tuple[str, str]]:
    """Every ``st.metric`` of the page as (label, value), in page order."""
    return await browser.evaluate(
        "[...document.querySelectorAll('[data-testid=stMetric]')].map(m => ["
        "m.querySelector('[data-testid=stMetricLabel]').innerText.trim(), "
        "m.querySelector('[data-testid=stMetricValue]').innerText.trim()])") or []
