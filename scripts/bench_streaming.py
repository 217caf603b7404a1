"""Streaming benchmark: sustained input rate, consumer lag, and event → PostgreSQL latency.

In a sandbox (private topics, database, lake) next to the running platform (Kafka,
PostgreSQL, Airflow), starts all five streaming apps as the platform does (one Spark
application, or one per app with GLOBALMART_STREAMING__ONE_APPLICATION=false), then drives the
generator in real-time mode at each rate for the given minutes. For each rate it prints:

- input and processed rates, and every query's consumer lag (records behind the topic end)
  at the start and the end of the second half of the run, with its slope: flat lag means
  the rate is sustained;
- latency from an event's arrival in Kafka (its broker timestamp) to the PostgreSQL commit
  of the micro-batch that carried it, p50/p95/p99, for the marts that are updated as events
  arrive (sales windows, anomalies, stock);
- where a batch's time goes: waiting for the trigger, Spark (read, state, shuffle, collect),
  PostgreSQL writes;
- the CPU the streaming processes used (cores, averaged over the run).

    .venv/bin/python scripts/bench_streaming.py --rates 500,20000 --minutes 10

The raw figures go to a JSON file and a plot of lag and latency to a PNG next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from globalmart import db
from globalmart.generator import service
from globalmart.kafka_admin import end_offsets
from globalmart.generator.publisher import Progress, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.platform.secrets import ensure_secrets
from globalmart.settings import PROJECT_ROOT, Settings, load_settings
from globalmart.streaming.launch import start_all, stop_app
from globalmart.streaming.sandbox import sandbox

# the queries whose marts change as events arrive; sessions close 30 minutes after their last
# event and the lake is written once a minute, so their delay is a setting, not a latency
LATENCY_QUERIES = {
    "sales_metrics.windows": "transactions",
    "anomaly_detector.rules": "transactions",
    "inventory_tracker.stock": "transactions",
}


def lag_sample(settings: Settings) -> dict[str, int]:
    """Records each query is behind the end of its topics (by its latest batch's end offsets)."""
    ends = end_offsets(settings, ["transactions", "product_views", "cart_events", "inventory"])
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT ON (query_name) query_name, end_offsets FROM stream_progress "
                    "ORDER BY query_name, trigger_at DESC")
        rows = cur.fetchall()
    lag = {}
    for name, sources in rows:
        behind = 0
        for source in sources:
            for topic, offsets in (source or {}).items():
                behind += sum(end - offsets.get(p, 0) for p, end in ends.get(topic, {}).items())
        lag[name] = behind
    return lag


def arrival_times(settings: Settings, key: str) -> dict[tuple[int, int], float]:
    """(partition, offset) → broker timestamp (s) of every record of a topic."""
    name = getattr(settings.kafka, key).name
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "bench-arrivals",
                         "enable.auto.commit": False, "fetch.max.bytes": 50_000_000})
    try:
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        times, remaining = {}, sum(ends.values())
        while remaining:
            for message in consumer.consume(10_000, timeout=10):
                if message.error():
                    continue
                times[(message.partition(), message.offset())] = message.timestamp()[1] / 1000
                remaining -= 1
        return times
    finally:
        consumer.close()


def batch_latencies(settings: Settings, since: datetime) -> dict[str, dict]:
    """Per query: latency of every event carried by a batch committed after ``since``, and the
    batch's time split (trigger wait, Spark, PostgreSQL)."""
    arrivals = arrival_times(settings, "transactions")
    topic = settings.kafka.transactions.name
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT p.query_name, p.trigger_at, p.duration_ms, p.start_offsets, p.end_offsets,
                   c.committed_at, c.spark_ms, c.write_ms
            FROM stream_progress p JOIN stream_commits c USING (query_name, checkpoint_id, batch_id)
            WHERE p.query_name = ANY(%s) AND p.trigger_at >= %s AND p.input_rows > 0
            ORDER BY p.trigger_at
            """,
            (list(LATENCY_QUERIES), since),
        )
        batches = cur.fetchall()
    results: dict[str, dict] = defaultdict(lambda: {"latency": [], "wait": [], "spark_ms": [], "write_ms": [], "batch_ms": []})
    for name, trigger_at, duration_ms, starts, ends, committed_at, spark_ms, write_ms in batches:
        result = results[name]
        commit = committed_at.timestamp()
        for start_source, end_source in zip(starts, ends, strict=True):
            # the first batch's start is not a dict of offsets but Spark's starting position
            first = start_source.get(topic, {}) if isinstance(start_source, dict) else {}
            last = end_source.get(topic, {}) if isinstance(end_source, dict) else {}
            for partition, end in last.items():
                for offset in range(first.get(partition, 0), end):
                    arrived = arrivals.get((int(partition), offset))
                    if arrived is not None:
                        result["latency"].append(commit - arrived)
                        result["wait"].append(max(0.0, trigger_at.timestamp() - arrived))
        result["spark_ms"].append(spark_ms)
        result["write_ms"].append(write_ms)
        result["batch_ms"].append(duration_ms)
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def slope_per_minute(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    var = sum((x - mean_x) ** 2 for x in xs) or 1.0
    return cov / var * 60


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    cpu: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        children[int(fields[1])].append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(children[pid])
    return total


def bench_rate(settings: Settings, rate: int, minutes: float, seed: int, processes: list[int]) -> dict:
    stop = threading.Event()
    reports = []
    started_at = datetime.now().astimezone()
    generator = threading.Thread(
        target=lambda: reports.append(run(settings, TrafficConfig(mode="realtime", rate=rate, seed=seed),
                                          stop=stop, progress=Progress(30, enabled=True))),
    )
    generator.start()
    lags: dict[str, list[tuple[float, int]]] = defaultdict(list)
    cpu_before = sum(map(tree_cpu_seconds, processes))
    t0 = time.monotonic()
    while time.monotonic() - t0 < minutes * 60:
        time.sleep(5)
        elapsed = time.monotonic() - t0
        for name, behind in lag_sample(settings).items():
            lags[name].append((elapsed, behind))
    streaming_cores = (sum(map(tree_cpu_seconds, processes)) - cpu_before) / (time.monotonic() - t0)
    stop.set()
    generator.join()
    report = reports[0]
    second_half = {name: [(t, v) for t, v in samples if t >= minutes * 30] for name, samples in lags.items()}
    latencies = batch_latencies(settings, started_at)
    return {
        "rate": rate,
        "minutes": minutes,
        "events_sent": report.events,
        "sent_per_second": round(report.events / (minutes * 60), 1),
        "one_application": settings.streaming.one_application,
        "streaming_cores": round(streaming_cores, 2),
        "lag": {
            name: {"start": samples[0][1] if samples else None, "end": samples[-1][1] if samples else None,
                   "max": max((v for _, v in samples), default=None),
                   "slope_per_minute": round(slope_per_minute(samples), 1)}
            for name, samples in sorted(second_half.items())
        },
        "lag_series": {name: samples for name, samples in lags.items()},
        "latency_seconds": {
            name: {"events": len(r["latency"]), "p50": round(percentile(r["latency"], 0.5), 3),
                   "p95": round(percentile(r["latency"], 0.95), 3), "p99": round(percentile(r["latency"], 0.99), 3),
                   "trigger_wait_p50": round(percentile(r["wait"], 0.5), 3),
                   "batch_ms_p50": percentile(r["batch_ms"], 0.5), "spark_ms_p50": percentile(r["spark_ms"], 0.5),
                   "write_ms_p50": percentile(r["write_ms"], 0.5)}
            for name, r in sorted(latencies.items())
        },
        "latency_samples": {name: r["latency"][:: max(1, len(r["latency"]) // 5000)] for name, r in latencies.items()},
    }


def plot(results: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(len(results), 2, figsize=(13, 4 * len(results)), squeeze=False)
    for row, result in zip(axes, results, strict=True):
        for name, samples in sorted(result["lag_series"].items()):
            row[0].plot([t / 60 for t, _ in samples], [v for _, v in samples], label=name)
        row[0].set(title=f"{result['rate']:,} events/s: consumer lag", xlabel="minutes", ylabel="records behind")
        row[0].legend(fontsize=7)
        names = sorted(result["latency_samples"])
        row[1].boxplot([result["latency_samples"][n] for n in names], showfliers=False)
        row[1].set_xticks(range(1, len(names) + 1), [n.split(".")[0] + "\n" + n.split(".")[1] for n in names], fontsize=7)
        row[1].set(title=f"{result['rate']:,} events/s: event → PostgreSQL latency", ylabel="seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,20000", help="events/s, comma-separated")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".state" / "bench" / "streaming.json")
    args = parser.parse_args()
    results = []
    for rate in (int(r) for r in args.rates.split(",")):
        with sandbox(ensure_secrets(load_settings()), "bench") as (settings, folder):
            service.load_catalog(settings)
            apps = start_all(settings, folder / "checkpoints", folder / "logs")
            try:
                time.sleep(30)  # the apps' JVMs start and run their first (empty) batches
                print(f"\n== {rate:,} events/s for {args.minutes} min", flush=True)
                result = bench_rate(settings, rate, args.minutes, args.seed, [p.pid for p in apps.values()])
            finally:
                for process in apps.values():
                    stop_app(process)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if not k.endswith(("_series", "_samples"))}, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    picture = plot(results, args.out.with_suffix(".png"))
    print(f"\nfigures: {args.out}" + (f", plot: {picture}" if picture else ""))


if __name__ == "__main__":
    main()
