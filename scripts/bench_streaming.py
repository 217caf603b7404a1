"""Streaming benchmark: sustained input rate, consumer lag, and event → PostgreSQL latency.

In a sandbox (private topics, database, lake) next to the running platform (Kafka,
PostgreSQL, Airflow), starts all five streaming apps as the platform does (the marts and the
bulk work in two Spark applications, or one per app with
GLOBALMART_STREAMING__ONE_APPLICATION=false), then drives the generator in real-time mode at
each rate for the given minutes. For each rate it prints:

- input and processed rates, and every query's consumer lag (records behind the topic end)
  over the second half of the run, with a verdict: sustained when the peaks of its lag (the
  largest lag in each stretch of two triggers, so the trigger's saw-tooth does not count) stay
  level (``globalmart.streaming.lag``);
- latency from an event's arrival in Kafka (its broker timestamp) to the PostgreSQL commit
  of the micro-batch that carried it, p50/p95/p99, for the marts that are updated as events
  arrive (sales windows, anomalies, stock);
- where a batch's time goes: waiting for the trigger, Spark (read, state, shuffle, collect),
  PostgreSQL writes;
- the CPU the streaming processes used (cores, averaged over the run).

    .venv/bin/python scripts/bench_streaming.py --rates 500,20000 --minutes 10
    .venv/bin/python scripts/bench_streaming.py --rates 500,3000 --minutes 5 --compare 8e05041

``--compare REV`` runs each rate twice, back to back: first the apps of commit REV (checked out
into a git worktree under .state/bench/, run as that commit ran them: every app in one Spark
application, its own defaults), then the apps of this tree, and prints a side-by-side table.
The harness (generator, measurements) is this tree's for both, so only the apps differ.

The raw figures go to a JSON file and a plot of lag and latency to a PNG next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
from globalmart.settings import env_overrides
from globalmart.spark import SPARK_JOBS_DIR, submit_environment
from globalmart.streaming.control import poll_until
from globalmart.streaming.lag import lag_verdict
from globalmart.streaming.launch import APPS, app_command, app_of, start_all, stop_app, trigger_of
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


QUERIES = 10  # the five apps' queries: windows, rules, stock, two of sessions, four lake ones, dead letters


def reporting_queries(settings: Settings) -> int:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(DISTINCT query_name) FROM stream_progress")
        return cur.fetchone()[0]


def input_rates(settings: Settings, since: datetime) -> dict[str, float]:
    """Records per second each query read since ``since``."""
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT query_name, sum(input_rows), extract(epoch FROM max(trigger_at) - min(trigger_at)) "
                    "FROM stream_progress WHERE trigger_at >= %s GROUP BY query_name", (since,))
        return {name: round(float(rows) / float(seconds), 1) if seconds else 0.0 for name, rows, seconds in cur.fetchall()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


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
    inputs = input_rates(settings, started_at)
    return {
        "rate": rate,
        "minutes": minutes,
        "events_sent": report.events,
        "sent_per_second": round(report.events / (minutes * 60), 1),
        "one_application": settings.streaming.one_application,
        "streaming_cores": round(streaming_cores, 2),
        "lag": {
            name: {"start": samples[0][1] if samples else None, "end": samples[-1][1] if samples else None,
                   "max": max((v for _, v in samples), default=None), "input_per_second": inputs.get(name, 0.0),
                   **vars(lag_verdict(samples, trigger_of(settings, app_of(name)), inputs.get(name, 0.0)))}
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
        row[0].set(title=f"{result['rate']:,} events/s ({result.get('code', 'this tree')}): consumer lag", xlabel="minutes", ylabel="records behind")
        row[0].legend(fontsize=7)
        names = sorted(result["latency_samples"])
        row[1].boxplot([result["latency_samples"][n] for n in names], showfliers=False)
        row[1].set_xticks(range(1, len(names) + 1), [n.split(".")[0] + "\n" + n.split(".")[1] for n in names], fontsize=7)
        row[1].set(title=f"{result['rate']:,} events/s ({result.get('code', 'this tree')}): event → PostgreSQL latency", ylabel="seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def revision_tree(revision: str) -> Path:
    """A git worktree of ``revision`` under .state/bench/ (made once, reused)."""
    sha = subprocess.run(["git", "rev-parse", "--short", revision], cwd=PROJECT_ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = PROJECT_ROOT / ".state" / "bench" / f"rev-{sha}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=PROJECT_ROOT, check=True)
    return tree


def start_revision_apps(settings: Settings, tree: Path, checkpoints: Path, logs: Path) -> dict[str, subprocess.Popen]:
    """The apps of another commit's tree, all in one Spark application (as commits before the
    marts/bulk split ran them), with that commit's code and defaults: only the sandbox (topics,
    database, lake) and the state directory come from here."""
    command = [arg.replace(str(SPARK_JOBS_DIR), str(tree / "spark_jobs")) for arg in app_command(settings, APPS, checkpoints)]
    logs.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GLOBALMART_STREAMING__")},
           **submit_environment(settings), **env_overrides(settings),
           "PYTHONPATH": f"{tree / 'include'}:{tree}", "GLOBALMART_STATE_DIR": str(settings.state_dir)}
    log = open(logs / "revision.log", "ab")  # noqa: SIM115 - the child process owns it
    return {"all_apps": subprocess.Popen(command, env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)}


def run_one(rate: int, args, tree: Path | None) -> dict:
    with sandbox(ensure_secrets(load_settings()), "bench") as (settings, folder):
        service.load_catalog(settings)
        if tree is None:
            apps = start_all(settings, folder / "checkpoints", folder / "logs")
        else:
            apps = start_revision_apps(settings, tree, folder / "checkpoints", folder / "logs")
        try:
            started = time.monotonic()
            poll_until("every query's first batch", lambda: reporting_queries(settings) >= QUERIES, timeout=900, every=2)
            print(f"apps up and through their first batches in {time.monotonic() - started:.0f} s", flush=True)
            label = "this tree" if tree is None else tree.name
            print(f"\n== {rate:,} events/s for {args.minutes} min: {label}", flush=True)
            result = bench_rate(settings, rate, args.minutes, args.seed, [p.pid for p in apps.values()])
        finally:
            for process in apps.values():
                stop_app(process)
    result["code"] = "this tree" if tree is None else tree.name
    print(json.dumps({k: v for k, v in result.items() if not k.endswith(("_series", "_samples"))}, indent=2), flush=True)
    return result


def side_by_side(pairs: list[tuple[dict, dict]]) -> str:
    """One line per rate and query: p95 latency, lag verdict, CPU, before → after."""
    lines = [f"{'rate':>7} {'query':<34} {'p95 s before':>12} {'p95 s after':>11} {'sustained before':>17} "
             f"{'sustained after':>16}"]
    for before, after in pairs:
        names = sorted(set(before["lag"]) | set(after["lag"]))
        for name in names:
            def p95(result):
                figure = result["latency_seconds"].get(name, {}).get("p95")
                return f"{figure:.2f}" if figure is not None else "-"

            def sustained(result):
                lag = result["lag"].get(name)
                return "-" if lag is None else ("yes" if lag["sustained"] else f"no (+{lag['peak_slope_per_minute']:,.0f}/min)")

            lines.append(f"{before['rate']:>7,} {name:<34} {p95(before):>12} {p95(after):>11} {sustained(before):>17} "
                         f"{sustained(after):>16}")
        lines.append(f"{before['rate']:>7,} {'(streaming cores)':<34} {before['streaming_cores']:>12} "
                     f"{after['streaming_cores']:>11}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,20000", help="events/s, comma-separated")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compare", metavar="REV", help="first run the apps of this commit at each rate, then this tree's")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / ".state" / "bench" / "streaming.json")
    args = parser.parse_args()
    tree = revision_tree(args.compare) if args.compare else None
    results, pairs = [], []
    for rate in (int(r) for r in args.rates.split(",")):
        before = run_one(rate, args, tree) if tree else None
        after = run_one(rate, args, None)
        results += [r for r in (before, after) if r]
        if before:
            pairs.append((before, after))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    picture = plot(results, args.out.with_suffix(".png"))
    if pairs:
        print("\n" + side_by_side(pairs))
    print(f"\nfigures: {args.out}" + (f", plot: {picture}" if picture else ""))


if __name__ == "__main__":
    main()
