"""Critical-stock alert → restock decision → stock rising in the mart, timed on the running platform.

For each of N real catalog products (the ones with the least stock the tracker knows, or
``--product``), publishes a critical-stock alert to the live ``alerts`` topic and times:

    alert published → decision recorded (alerts DAG) → alert email with the link in the inbox
    → decision form waiting (Required Actions) → answered "Reorder" through the REST API (at once:
    the person's own time is left out) → restock event on ``inventory`` → ``inventory_stock`` of
    the product risen by the quantity (inventory tracker)

Needs `make run` (alerts and restock_decision DAGs unpaused). The stock only rises while the
inventory tracker runs: when its queries have not reported for a minute, the script starts it
(``inventory_tracker`` alone, from its own checkpoints) for the measurement and stops it after;
``--no-start-tracker`` waits for one started elsewhere. The restocks are real: each product
gets the suggested quantity. Results: a table and a JSON file in ``<state>/bench/``.

    .venv/bin/python scripts/measure_restock_decision.py --products 3
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

from globalmart import db
from globalmart.decisions.policy import DECIDE_TASK
from globalmart.platform.secrets import ensure_secrets
from globalmart.settings import Settings, load_settings

POLL_SECONDS = 0.25
TRACKER = "inventory_tracker"
STEPS = ("decision_recorded", "email_in_inbox", "form_waiting", "answered", "restock_sent", "stock_risen")


class Clock:
    def __init__(self):
        self.start = time.monotonic()

    def wait(self, what: str, check, timeout: float):
        """Poll ``check`` until it returns something truthy; (value, seconds since the start)."""
        deadline = time.monotonic() + timeout
        while not (value := check()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: nothing after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
        return value, time.monotonic() - self.start


def tracker_alive(settings: Settings, within_seconds: float = 60) -> bool:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM stream_status WHERE app = %s AND status <> 'stopped' "
                    "AND last_seen_at > now() - make_interval(secs => %s)", (TRACKER, within_seconds))
        return cur.fetchone()[0] > 0


FRESH = """NOT EXISTS (SELECT 1 FROM decisions d WHERE d.kind = 'restock' AND d.subject_key = {column}
                     AND (d.status = 'open' OR d.closed_at > now() - make_interval(mins => %(decision_minutes)s)))
   AND NOT EXISTS (SELECT 1 FROM alert_throttle t WHERE t.kind = 'stock.critical' AND t.subject_key = {column}
                   AND t.last_sent_at > now() - make_interval(mins => %(email_minutes)s))"""


def pick_products(settings: Settings, count: int) -> list[tuple[str, int]]:
    """(product, stock) of the catalog products with the least stock, neither in a decision nor
    emailed lately (either would be throttled)."""
    params = {"decision_minutes": settings.decisions.throttle_minutes, "email_minutes": settings.alerting.throttle_minutes,
              "count": count}
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(f"""SELECT s.product_id, s.stock FROM inventory_stock s
                        WHERE s.in_catalog AND {FRESH.format(column="s.product_id")}
                        ORDER BY s.stock, s.product_id LIMIT %(count)s""", params)
        rows = cur.fetchall()
        if len(rows) < count:  # a tracker that has seen little: catalog products it does not know yet
            cur.execute(f"""SELECT c.product_id, c.initial_stock FROM product_catalog c
                            WHERE NOT EXISTS (SELECT 1 FROM inventory_stock s WHERE s.product_id = c.product_id)
                            AND {FRESH.format(column="c.product_id")}
                            ORDER BY c.initial_stock, c.product_id LIMIT %(count)s""", {**params, "count": count - len(rows)})
            rows += cur.fetchall()
    return rows


def restocked(settings: Settings, product: str) -> int:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT units_restocked FROM inventory_stock WHERE product_id = %s", (product,))
        row = cur.fetchone()
        return row[0] if row else 0


def decision_of(settings: Settings, alert_id: str) -> dict | None:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT decision_id, dag_id, suggested_quantity, restock_sent_at FROM decisions "
                    "WHERE alert_id = %s", (alert_id,))
        row = cur.fetchone()
    return dict(zip(("decision_id", "dag_id", "suggested_quantity", "restock_sent_at"), row)) if row else None


def measure_one(settings: Settings, api: httpx.Client, inbox: httpx.Client, product: str, stock: int,
                timeout: float) -> dict:
    run = uuid.uuid4().hex[:8]
    alert_id = f"stock:{product}:critical:measure-{run}"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    alert = {"alert_id": alert_id, "app": "inventory_tracker", "kind": "stock.critical", "severity": "critical",
             "subject": f"Critical stock: {product}", "event_time": now, "created_at": now,
             "detail": {"product_id": product, "stock": stock, "state_before": "low", "state": "critical",
                        "threshold": settings.thresholds.critical_stock}}
    before = restocked(settings, product)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    clock = Clock()
    producer.produce(settings.kafka.alerts.name, key=alert_id, value=json.dumps(alert))
    producer.flush(10)
    times: dict[str, float] = {}
    decision, times["decision_recorded"] = clock.wait("decision", lambda: decision_of(settings, alert_id), timeout)
    run_path = f"/api/v2/dags/{decision['dag_id']}/dagRuns/{decision['decision_id']}/taskInstances/{DECIDE_TASK}"

    def email():
        return [m for m in inbox.get("/email").json()
                if product in m["subject"] and decision["decision_id"] in (m.get("text") or "")]
    _, times["email_in_inbox"] = clock.wait("alert email with the link", email, timeout)
    _, times["form_waiting"] = clock.wait(
        "form waiting", lambda: api.get(run_path).json().get("state") == "awaiting_input", timeout)
    answered = api.patch(f"{run_path}/-1/hitlDetails", json={
        "chosen_options": ["Reorder"], "params_input": {"quantity": decision["suggested_quantity"]}})
    answered.raise_for_status()
    times["answered"] = time.monotonic() - clock.start
    _, times["restock_sent"] = clock.wait(
        "restock sent", lambda: (decision_of(settings, alert_id) or {}).get("restock_sent_at"), timeout)
    _, times["stock_risen"] = clock.wait(
        "stock risen", lambda: restocked(settings, product) >= before + decision["suggested_quantity"], timeout)
    return {"product": product, "stock_at_alert": stock, "quantity": decision["suggested_quantity"],
            "decision_id": decision["decision_id"], "seconds_since_alert": {k: round(v, 2) for k, v in times.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=3, help="products to restock, one after the other")
    parser.add_argument("--product", action="append", help="this catalog product (repeatable) instead")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait of one step, seconds")
    parser.add_argument("--no-start-tracker", action="store_true", help="never start the inventory tracker")
    args = parser.parse_args(argv)

    settings = ensure_secrets(load_settings())
    af = settings.airflow
    api = httpx.Client(base_url=af.url, timeout=30)
    token = api.post("/auth/token", json={"username": af.admin_user, "password": af.admin_password.get_secret_value()})
    token.raise_for_status()
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    inbox = httpx.Client(base_url=settings.smtp.inbox_url, timeout=10)

    tracker = None
    tracker_start = None
    if not tracker_alive(settings):
        if args.no_start_tracker:
            sys.exit("the inventory tracker is not running (its queries have not reported for a minute)")
        from globalmart.streaming.launch import start_apps

        print("starting the inventory tracker for the measurement ...", flush=True)
        started = time.monotonic()
        tracker = start_apps(settings, (TRACKER,), settings.checkpoints_dir, settings.logs_dir / "measure_restock")
        deadline = time.monotonic() + 300
        while not tracker_alive(settings, within_seconds=15):
            if tracker.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the inventory tracker did not start: see {settings.logs_dir / 'measure_restock'}")
            time.sleep(1)
        tracker_start = round(time.monotonic() - started, 1)
        print(f"inventory tracker reporting after {tracker_start} s", flush=True)
    try:
        products = ([(p, 2) for p in args.product] if args.product else pick_products(settings, args.products))
        results = []
        for product, stock in products:
            result = measure_one(settings, api, inbox, product, max(0, min(stock, settings.thresholds.critical_stock - 1)),
                                 args.timeout)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        if tracker is not None:
            from globalmart.streaming.launch import stop_app

            stop_app(tracker)

    print(f"\n{'step':<20}" + "".join(f"{r['product'][:12]:>14}" for r in results) + f"{'median':>10}")
    summary = {}
    for step in STEPS:
        values = [r["seconds_since_alert"][step] for r in results]
        summary[step] = statistics.median(values)
        print(f"{step:<20}" + "".join(f"{v:>14.2f}" for v in values) + f"{summary[step]:>10.2f}")
    out = settings.state_dir / "bench" / f"restock_decision_{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": results, "median_seconds_since_alert": summary,
                               "tracker_started_for_the_measurement_seconds": tracker_start}, indent=2))
    print(f"\nseconds since the alert was published; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
