"""Screenshots of human-in-the-loop decisions on the running platform (writes PNGs to docs/screenshots/).

Publishes a critical-stock alert (a real catalog product) and a high-score anomaly alert to the
live ``alerts`` topic; the alerts DAG emails them with a link and opens a restock decision and a
fraud review. Debian's chromium, headless, driven through the DevTools protocol (as in
``capture_dashboard_screenshots.py``), signed in to Airflow with a token of the admin user,
captures:

- ``decisions_required_actions.png``: Browse → Required Actions with both decisions waiting;
- ``decisions_alert_email.png``: the critical-stock email in the inbox, with its link;
- ``decisions_email_link_landing.png``: the page that link opens: the restock form;
- ``decisions_fraud_review.png``: the fraud review's form.

Then it answers both (Ignore; Hold customer) so that nothing stays open. Needs `make run`.

    .venv/bin/python scripts/capture_decision_screenshots.py
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from confluent_kafka import Producer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from globalmart import db  # noqa: E402
from globalmart.decisions.policy import DECIDE_TASK  # noqa: E402
from globalmart.platform.secrets import ensure_secrets  # noqa: E402
from globalmart.settings import load_settings  # noqa: E402
from tests.devtools_browser import Browser, chromium  # noqa: E402

OUTPUT = PROJECT_ROOT / "docs" / "screenshots"

WAIT_SECONDS = 240


def wait(what: str, check, seconds: float = WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: nothing after {seconds:.0f} s")
        time.sleep(0.5)
    return value


def alerts(settings, product: str, stock: int, marker: str) -> list[dict]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    anomaly = f"A-{marker}"
    return [
        {"alert_id": f"stock:{product}:critical:{marker}", "app": "inventory_tracker", "kind": "stock.critical",
         "severity": "critical", "subject": f"Critical stock: {product}", "event_time": now, "created_at": now,
         "detail": {"product_id": product, "stock": stock, "state_before": "low", "state": "critical",
                    "threshold": settings.thresholds.critical_stock}},
        {"alert_id": f"anomaly:{anomaly}", "app": "anomaly_detector", "kind": "anomaly.high_value",
         "severity": "critical", "subject": "High-value transaction", "event_time": now, "created_at": now,
         "detail": {"anomaly_id": anomaly, "kind": "high_value", "user_id": f"U-{marker[-6:]}", "country": "UK",
                    "transaction_ids": [f"T-{marker}-1"], "first_event_time": now, "last_event_time": now,
                    "amount": 18450.0, "observed": 18450.0, "threshold": settings.thresholds.high_value_transaction,
                    "score": 0.97, "description": "one purchase of $18,450.00, 3.7x the high-value threshold of $5,000"}},
    ]


def decision_of(settings, alert_id: str):
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT decision_id, dag_id FROM decisions WHERE alert_id = %s OR %s = ANY(joined_alert_ids)",
                    (alert_id, alert_id))
        return cur.fetchone()


def main() -> None:
    settings = ensure_secrets(load_settings())
    OUTPUT.mkdir(parents=True, exist_ok=True)
    af = settings.airflow
    api = httpx.Client(base_url=af.url, timeout=30)
    token = api.post("/auth/token", json={"username": af.admin_user,
                                          "password": af.admin_password.get_secret_value()}).json()["access_token"]
    api.headers["Authorization"] = f"Bearer {token}"
    with db.connect(settings) as conn, conn.cursor() as cur:  # a real product, not in a decision lately
        cur.execute("""SELECT product_id, name FROM product_catalog c WHERE NOT EXISTS (
                       SELECT 1 FROM decisions d WHERE d.kind = 'restock' AND d.subject_key = c.product_id)
                       ORDER BY initial_stock, product_id LIMIT 1""")
        product, name = cur.fetchone()
    marker = f"screenshot-{uuid.uuid4().hex[:8]}"
    stock_alert, anomaly_alert = alerts(settings, product, 2, marker)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for alert in (stock_alert, anomaly_alert):
        producer.produce(settings.kafka.alerts.name, key=alert["alert_id"], value=json.dumps(alert))
    producer.flush(10)
    print(f"alerts published: {product} ({name}), {anomaly_alert['detail']['anomaly_id']}", flush=True)
    restock = wait("restock decision", lambda: decision_of(settings, stock_alert["alert_id"]))
    fraud = wait("fraud review", lambda: decision_of(settings, anomaly_alert["alert_id"]))
    for decision_id, dag_id in (restock, fraud):
        path = f"/api/v2/dags/{dag_id}/dagRuns/{decision_id}/taskInstances/{DECIDE_TASK}"
        wait(f"{decision_id} waiting", lambda path=path: api.get(path).json().get("state") == "awaiting_input")
    email = wait("alert email", lambda: next((m for m in httpx.get(f"{settings.smtp.inbox_url}/email").json()
                                              if product in m["subject"] and restock[0] in (m.get("html") or "")), None))
    link = re.search(r'href="([^"]*required_actions[^"]*)"', email["html"]).group(1).replace("&amp;", "&")
    print(f"decisions waiting: {restock[0]}, {fraud[0]}; email link {link}", flush=True)

    try:
        async def run() -> None:
            with chromium() as page_socket:
                async with Browser(page_socket) as browser:
                    await browser.send("Network.enable")
                    await browser.send("Network.setCookie", name="_token", value=token, url=af.url)

                    async def shot(url: str, ready: str, name: str) -> None:
                        await browser.send("Page.navigate", url=url)
                        await browser.wait_for(ready, seconds=60)
                        await asyncio.sleep(2)  # the tables and icons settle after the data arrives
                        size = await browser.capture(OUTPUT / f"{name}.png")
                        print(f"  docs/screenshots/{name}.png ({size // 1024} KiB)", flush=True)

                    subject_of_restock = f"Restock {name}"
                    await shot(f"{af.url}/required_actions?response_received=false",
                               f"document.body.innerText.includes({json.dumps(subject_of_restock)}) && "
                               f"document.body.innerText.includes('Fraud review')", "decisions_required_actions")
                    await shot(f"{settings.smtp.inbox_url}/#/email/{email['id']}",
                               f"!!document.querySelector('iframe') || document.body.innerText.includes({json.dumps(product)})",
                               "decisions_alert_email")
                    await shot(link, "document.body.innerText.includes('Reorder') && document.body.innerText.includes('Ignore')",
                               "decisions_email_link_landing")
                    fraud_url = (f"{af.url}/dags/{fraud[1]}/runs/{fraud[0]}/tasks/{DECIDE_TASK}/required_actions?map_index=-1")
                    await shot(fraud_url, "document.body.innerText.includes('Confirm fraud')", "decisions_fraud_review")

        asyncio.run(run())
    finally:
        for (decision_id, dag_id), option, params in ((restock, "Ignore", {"quantity": 10}), (fraud, "Hold customer", {})):
            api.patch(f"/api/v2/dags/{dag_id}/dagRuns/{decision_id}/taskInstances/{DECIDE_TASK}/-1/hitlDetails",
                      json={"chosen_options": [option], "params_input": params})
        print("both decisions answered (Ignore, Hold customer)")


if __name__ == "__main__":
    main()
