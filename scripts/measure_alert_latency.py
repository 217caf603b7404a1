"""Alert event → email latency through the running platform (Kafka → alerts DAG → SMTP inbox).

Publishes N critical-stock alerts, each for a product of its own (so none is throttled), to the
live ``alerts`` topic, and watches the inbox (MailDev's REST API) for the email naming each one,
alone or as a line of a digest. Prints p50 / p95 / max of the time from publishing to the email
being in the inbox, and a JSON line with every figure.

Needs `make run` with the ``alerts`` DAG unpaused. The emails go to the configured alert
recipients, with "latency" in every product id. The interval matters: alerts 15 s apart each
take the whole path (wake-up, DAG run, task start); alerts a few seconds apart are often picked
up by the run still draining the previous one; a burst (``--interval 0``) arrives as digests.

    .venv/bin/python scripts/measure_alert_latency.py --alerts 10 --interval 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
from confluent_kafka import Producer

from globalmart.settings import load_settings

POLL_SECONDS = 0.25  # inbox polling period: the resolution of the measured latency


def critical_stock_alert(product_id: str) -> dict:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "alert_id": f"stock:{product_id}:critical:1", "app": "inventory_tracker", "kind": "stock.critical",
        "severity": "critical", "subject": f"Critical stock: {product_id}", "event_time": now, "created_at": now,
        "detail": {"product_id": product_id, "stock": 2, "state_before": "low", "state": "critical", "threshold": 5},
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=20, help="alerts to publish")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between two alerts")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on an email after this many seconds")
    args = parser.parse_args(argv)

    settings = load_settings()
    run = uuid.uuid4().hex[:8]
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    inbox = httpx.Client(base_url=settings.smtp.inbox_url, timeout=10)
    published: dict[str, float] = {}
    landed: dict[str, float] = {}
    digested: set[str] = set()

    def look() -> None:
        now = time.monotonic()
        for email in inbox.get("/email").json():
            body = email.get("html") or ""
            if f"P-latency-{run}-" not in body:
                continue
            for product in published.keys() - landed.keys():
                if product in body:
                    landed[product] = now
                    if "digest" in email["subject"].lower():
                        digested.add(product)

    next_send = time.monotonic()
    for n in range(args.alerts):
        product = f"P-latency-{run}-{n:03d}"
        alert = critical_stock_alert(product)
        producer.produce(settings.kafka.alerts.name, key=alert["alert_id"], value=json.dumps(alert))
        producer.flush(10)
        published[product] = time.monotonic()
        print(f"published {n + 1}/{args.alerts}: {product}", file=sys.stderr)
        next_send += args.interval
        while time.monotonic() < next_send:
            look()
            time.sleep(POLL_SECONDS)
    deadline = time.monotonic() + args.timeout
    while len(landed) < len(published) and time.monotonic() < deadline:
        look()
        time.sleep(POLL_SECONDS)

    latencies = [landed[p] - published[p] for p in landed]
    result = {
        "alerts": len(published), "emailed": len(landed), "missing": len(published) - len(landed),
        "in_digests": len(digested), "interval_s": args.interval,
        "p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
        "max_s": round(max(latencies), 2) if latencies else None,
        "resolution_s": POLL_SECONDS,
    }
    print(f"alert → email latency over {len(latencies)} alerts: p50 {result['p50_s']} s, p95 {result['p95_s']} s, "
          f"max {result['max_s']} s ({result['missing']} missing, {result['in_digests']} in digests)")
    print(json.dumps(result))
    return 0 if not result["missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
