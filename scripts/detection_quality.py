"""Detection quality of the streaming apps against the generator's ground truth.

In a sandbox (private topics, database and lake), backfills whole days of traffic with
injected anomalies and abandoned carts, runs the anomaly detector and the sessions app over
them (``--available-now``), then reports precision and recall per anomaly kind and for cart
abandonment. Rerun with the same arguments to repeat a measurement:

    .venv/bin/python scripts/detection_quality.py --days 1 --daily-transactions 20000

``--reviews`` reports instead what people judged on the live platform: per anomaly rule, the
fraud reviews answered in Airflow (confirmed, legitimate, held, timed out) and the judged
precision, confirmed / (confirmed + legitimate), to tune each rule's threshold on:

    .venv/bin/python scripts/detection_quality.py --reviews
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import orjson
from confluent_kafka import Consumer, TopicPartition

from globalmart import db, quality
from globalmart.generator import service
from globalmart.generator.publisher import Progress, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.platform.secrets import ensure_secrets
from globalmart.settings import Settings, load_settings
from globalmart.streaming.launch import start_all
from globalmart.streaming.clock import publish_ticks
from globalmart.streaming.sandbox import sandbox

APPS = ("anomaly_detector", "sessions")


def read_topic(settings: Settings, key: str) -> list[dict]:
    name = getattr(settings.kafka, key).name
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"quality-{name}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        records, remaining = [], sum(ends.values())
        while remaining:
            message = consumer.poll(10)
            if message is None:
                raise RuntimeError(f"timed out reading {name}")
            if message.error():
                raise RuntimeError(message.error())
            records.append(orjson.loads(message.value()))
            remaining -= 1
        return records
    finally:
        consumer.close()


def measure(settings: Settings, folder, args) -> dict:
    service.load_catalog(settings)
    config = TrafficConfig(mode="backfill", days=args.days, daily_transactions=args.daily_transactions,
                           seed=args.seed, anomaly_rate=args.anomaly_rate)
    started = time.monotonic()
    report = run(settings, config, progress=Progress(10, enabled=True))
    publish_ticks(settings)  # now: every session and cart of the past closes
    generated = time.monotonic() - started
    print(f"generated {report.events:,} events in {generated:.0f} s; running {', '.join(APPS)} over them", flush=True)
    started = time.monotonic()
    processes = start_all(settings, folder / "checkpoints", folder / "logs", apps=APPS, available_now=True)
    for name, process in processes.items():
        if process.wait() != 0:
            sys.exit(f"{name} failed: see {folder / 'logs' / (name + '.log')}")
    processed = time.monotonic() - started

    truth = read_topic(settings, "ground_truth")
    delivered = {tx["transaction_id"] for tx in read_topic(settings, "transactions")}
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT kind, transaction_ids FROM anomalies")
        anomalies = [{"kind": kind, "transaction_ids": ids} for kind, ids in cur.fetchall()]
        cur.execute("SELECT user_id, session_ids FROM cart_abandonments")
        carts = [{"user_id": user, "session_ids": sessions} for user, sessions in cur.fetchall()]
    results = quality.anomaly_quality(truth, anomalies, delivered) + [quality.abandonment_quality(truth, carts)]
    return {
        "config": {"days": args.days, "daily_transactions": args.daily_transactions, "seed": args.seed,
                   "anomaly_rate": args.anomaly_rate},
        "events": report.events,
        "transactions": len(delivered),
        "generate_seconds": round(generated, 1),
        "process_seconds": round(processed, 1),
        "quality": [r.as_dict() for r in results],
    }


def reviews(settings: Settings, as_json: bool) -> None:
    """The fraud reviews of the live platform's anomalies, per rule (``globalmart.decisions``)."""
    from globalmart.decisions.quality import review_quality
    from globalmart.decisions.store import reviewed_anomalies

    with db.connect(settings) as conn:
        rows = review_quality(reviewed_anomalies(conn))
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    print(f"{'rule':<20}{'anomalies':>10}{'reviewed':>10}{'confirmed':>11}{'legitimate':>12}{'held':>6}"
          f"{'timed out':>11}{'judged precision':>18}")
    for r in rows:
        precision = "—" if r.judged_precision is None else f"{r.judged_precision:.4f}"
        print(f"{r.rule:<20}{r.anomalies:>10}{r.reviewed:>10}{r.confirmed:>11}{r.legitimate:>12}{r.held:>6}"
              f"{r.timed_out:>11}{precision:>18}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--daily-transactions", type=int, default=20_000)
    parser.add_argument("--anomaly-rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--reviews", action="store_true",
                        help="report the fraud reviews people answered on the live platform, per rule, and stop")
    args = parser.parse_args()
    if args.reviews:
        reviews(ensure_secrets(load_settings()), args.json)
        return
    with sandbox(ensure_secrets(load_settings()), "quality") as (settings, folder):
        result = measure(settings, folder, args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"\n{result['events']:,} events, {result['transactions']:,} transactions; "
          f"generated in {result['generate_seconds']} s, processed in {result['process_seconds']} s\n")
    print(f"{'kind':<20}{'truth':>8}{'detected':>10}{'TP':>8}{'found':>8}{'precision':>11}{'recall':>9}")
    for row in result["quality"]:
        print(f"{row['kind']:<20}{row['truth']:>8}{row['detected']:>10}{row['true_positives']:>8}{row['found']:>8}"
              f"{row['precision']:>11.4f}{row['recall']:>9.4f}")


if __name__ == "__main__":
    main()
