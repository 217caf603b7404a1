"""Daily batch benchmark: one big day through the whole DAG, and a year-long RFM.

In a sandbox beside the running platform (private PostgreSQL database with the catalog,
MongoDB database, lake and staging area):

1. **day**: generates one past day of ``--day-transactions`` / ``--copies`` transactions with
   their views and cart events (``globalmart.generator.lake``), scales it to ``--copies`` copies
   with distinct transaction, event, session and shopper ids into the lake (the generator writes
   ~19k events/s on this machine, so a 10× day takes ~10 minutes to simulate and ~1 minute to
   copy; a copy shares only products and event times with the original), then runs the
   ``daily_batch`` DAG for it with ``dag.test()`` through the LocalExecutor (every spark-submit,
   both gates, publish, notify) and prints the wall time of the run and of each task, the
   publish time per collection, and the cores FerretDB and PostgreSQL used while it published
   (sampled every second); with ``--rerun`` it runs the DAG for the day again, unchanged (the
   re-publish: only what changed is written);
2. **year RFM**: writes ``--year-days`` days × ``--year-daily-transactions`` transactions
   (the three columns RFM reads: user, amount, date; users drawn with a skew so that some buy
   often) with Spark into another lake, then times the ``rfm`` step's spark-submit for the
   last day over the whole look-back.

    .venv/bin/python scripts/bench_daily_batch.py                     # targets: 1M-transaction day, 365 × 100k
    .venv/bin/python scripts/bench_daily_batch.py --day-transactions 100000 --copies 1 --year-daily-transactions 10000

Targets (issue 6): the 10× day (1M transactions) in ≤ 5 minutes including gates; the
year-long RFM (~36M transactions) in ≤ 5 minutes. Figures go to ``<state>/bench/daily_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import threading
import time
from datetime import UTC, date, datetime, timedelta

from globalmart.platform.airflow_env import airflow_environment
from globalmart.platform.secrets import ensure_secrets
from globalmart.settings import ENV_PREFIX, Settings, env_overrides, load_settings


# per lake dataset, the ids a copy of the day makes its own
COPIED_IDS = {
    "transactions": ("transaction_id", "user_id", "session_id"),
    "product_views": ("event_id", "user_id", "session_id"),
    "cart_events": ("event_id", "user_id", "session_id"),
}


def scale_day(spark, generated: Settings, lake: Settings, day: date, copies: int) -> dict[str, int]:
    """``copies`` copies of ``day`` from ``generated``'s lake into ``lake``'s: copy 0 is the
    original, copy k suffixes every id of ``COPIED_IDS`` with ``-k``; rows per dataset."""
    from pyspark.sql import functions as F

    from globalmart.warehouse.sources import read_lake

    rows = {}
    for topic, ids in COPIED_IDS.items():
        original = read_lake(spark, generated, topic, day, day)
        copy = F.col("copy")
        scaled = original.crossJoin(spark.range(copies).withColumnRenamed("id", "copy")).withColumns(
            {column: F.when(copy == 0, F.col(column)).otherwise(F.concat_ws("-", column, copy.cast("string")))
             for column in ids}).drop("copy")
        scaled.write.mode("overwrite").partitionBy("event_date", "event_hour").parquet(str(lake.lake_dir / topic))
        rows[topic] = spark.read.parquet(str(lake.lake_dir / topic)).count()
    return rows


class ServerCpu:
    """Samples, every second, the CPU time of FerretDB and of PostgreSQL (all its processes),
    and the machine's busy share, to tell what a stretch of the run was bound by."""

    def __init__(self):
        self.samples: list[tuple[float, float, float, float]] = []  # (time, ferretdb s, postgres s, busy share)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _cpu_seconds(name: str) -> float:
        import psutil

        total = 0.0
        for process in psutil.process_iter(["name", "cpu_times"]):
            if process.info["name"] == name and process.info["cpu_times"]:
                total += process.info["cpu_times"].user + process.info["cpu_times"].system
        return total

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            busy = psutil.cpu_percent(interval=None) / 100
            self.samples.append((time.time(), self._cpu_seconds("ferretdb"), self._cpu_seconds("postgres"), busy))
            self._stop.wait(1.0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def between(self, start: datetime, end: datetime) -> dict:
        """Mean cores used by FerretDB and by PostgreSQL, and the machine's busy share, from start to end."""
        inside = [s for s in self.samples if start.timestamp() <= s[0] <= end.timestamp()]
        if len(inside) < 2:
            return {}
        span = inside[-1][0] - inside[0][0]
        return {"ferretdb_cores": round((inside[-1][1] - inside[0][1]) / span, 2),
                "postgres_cores": round((inside[-1][2] - inside[0][2]) / span, 2),
                "machine_busy": round(sum(s[3] for s in inside[1:]) / (len(inside) - 1), 2),
                "cores": os.cpu_count()}


def run_dag(dag, day: date, cpu: ServerCpu, label: str) -> dict:
    """One run of daily_batch for ``day``: wall time, each task's, publish per collection, server CPU while publishing."""
    started = time.monotonic()
    # through the LocalExecutor: each task in its own process, as the scheduler runs it
    run = dag.test(run_conf={"start_date": day.isoformat(), "end_date": day.isoformat(), "lake_from_archiver": False},
                   use_executor=True)
    wall = time.monotonic() - started
    instances = {ti.task_id: ti for ti in run.get_task_instances()}
    tasks = {task_id: {"state": ti.state, "seconds": round((ti.end_date - ti.start_date).total_seconds(), 1)}
             for task_id, ti in instances.items() if ti.start_date and ti.end_date}
    print(f"[{label}] DAG run {run.state} in {wall:.0f} s", flush=True)
    for task_id, figures in sorted(tasks.items(), key=lambda item: item[1]["seconds"], reverse=True):
        print(f"  {task_id:22} {figures['seconds']:7.1f} s  {figures['state']}")
    result = {"dag_state": run.state, "dag_seconds": round(wall, 1), "tasks": tasks}
    publish = instances.get("publish")
    if publish is not None and publish.state == "success":
        record = publish.xcom_pull(task_ids="publish")[day.isoformat()]
        result["publish"] = {table: {**record["tables"][table], "seconds": seconds}
                             for table, seconds in record["seconds"].items()}
        result["publish_server_cpu"] = cpu.between(publish.start_date, publish.end_date)
        print(f"  publish per collection ({result['publish_server_cpu']}):")
        for table, figures in result["publish"].items():
            print(f"    {table:20} {figures['seconds']:7.1f} s  " + ", ".join(
                f"{count:,} {outcome}" for outcome, count in figures.items() if outcome != "seconds"))
    return result


def bench_day(settings: Settings, spark, day_transactions: int, copies: int, env: dict[str, str],
              rerun: bool = False) -> dict:
    from globalmart.generator.lake import write_lake
    from globalmart.generator.traffic import TrafficConfig
    from globalmart.settings import get_settings

    end = datetime.now(UTC).date()
    day = end - timedelta(days=1)
    generated = settings.model_copy(update={"lake_dir": settings.lake_dir.parent / "generated_lake"})
    started = time.monotonic()
    original = write_lake(spark, generated, TrafficConfig(mode="backfill", days=1, end_date=end, seed=2026,
                                                          daily_transactions=day_transactions // copies))
    generation = time.monotonic() - started
    print(f"[day] generated in {generation:.0f} s: {original}", flush=True)
    started = time.monotonic()
    events = scale_day(spark, generated, settings, day, copies)
    scaling = time.monotonic() - started
    print(f"[day] {copies} copies in the lake in {scaling:.0f} s: {events}", flush=True)

    os.environ.update(env)
    get_settings.cache_clear()
    from globalmart.dag_parsing import parse_dag_files

    dag = parse_dag_files().dags["daily_batch"]
    dag.deadline = None  # dag.test() crashes pruning a successful run's deadlines (apache/airflow#73428)
    figures = {"day": day.isoformat(), "events": events, "copies": copies, "generation_seconds": round(generation, 1),
               "scaling_seconds": round(scaling, 1)}
    with ServerCpu() as cpu:
        figures.update(run_dag(dag, day, cpu, "day"))
        if rerun:
            figures["rerun"] = run_dag(dag, day, cpu, "re-run")
    return figures


def write_year(spark, settings: Settings, last_day: date, days: int, daily: int) -> int:
    """``days`` × ``daily`` transactions (user_id, total_amount, event_date) into ``settings.lake_dir``."""
    from pyspark.sql import functions as F

    first = last_day - timedelta(days=days - 1)
    users = settings.catalog.users
    total = days * daily
    frame = spark.range(total).select(
        # squaring a uniform draw skews purchases toward low user numbers: frequent buyers exist
        F.format_string("U%08d", (F.pow(F.rand(7), 2) * users).cast("long") + 1).alias("user_id"),
        F.round(F.exp(F.randn(11) * 0.8 + 4.2), 2).alias("total_amount"),
        F.date_add(F.lit(first), (F.col("id") % days).cast("int")).alias("event_date"),
    )
    frame.write.mode("overwrite").partitionBy("event_date").parquet(str(settings.lake_dir / "transactions"))
    return total


def bench_year_rfm(settings: Settings, spark, days: int, daily: int, env: dict[str, str]) -> dict:
    from globalmart.spark import submit_command, submit_environment

    last_day = datetime.now(UTC).date() - timedelta(days=1)
    year = settings.model_copy(update={"lake_dir": settings.lake_dir.parent / "year_lake"})
    started = time.monotonic()
    total = write_year(spark, year, last_day, days, daily)
    written = time.monotonic() - started
    print(f"[rfm] {total:,} transactions over {days} days written in {written:.0f} s", flush=True)
    command = submit_command(settings, "batch/daily_batch.py", ["rfm", "--start", last_day.isoformat()],
                             streaming=False)
    child_env = {**os.environ, **env, **submit_environment(settings), **env_overrides(year),
                 f"{ENV_PREFIX}WAREHOUSE__RFM_LOOKBACK_DAYS": str(days)}
    started = time.monotonic()
    subprocess.run(command, env=child_env, check=True)
    seconds = time.monotonic() - started
    print(f"[rfm] rfm step (spark-submit) over {total:,} transactions: {seconds:.0f} s", flush=True)
    return {"transactions": total, "days": days, "write_seconds": round(written, 1), "rfm_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day-transactions", type=int, default=1_000_000)
    parser.add_argument("--copies", type=int, default=10, help="the day is generated at 1/copies of its volume, then copied")
    parser.add_argument("--year-days", type=int, default=365)
    parser.add_argument("--year-daily-transactions", type=int, default=100_000)
    parser.add_argument("--skip-day", action="store_true")
    parser.add_argument("--skip-year", action="store_true")
    parser.add_argument("--rerun", action="store_true", help="run the day's DAG a second time, unchanged")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")  # generation progress

    live = ensure_secrets(load_settings())
    os.environ.update(airflow_environment(live))  # before Airflow is imported
    from pyspark.sql import SparkSession

    from globalmart.warehouse.sandbox import warehouse_sandbox

    spark = (SparkSession.builder.master(live.spark.master).appName("bench_daily_batch")
             .config("spark.driver.memory", "2g").config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false").getOrCreate())
    figures: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    try:
        with warehouse_sandbox(live, "bench") as settings:
            env = env_overrides(settings)
            if not args.skip_day:
                figures["day"] = bench_day(settings, spark, args.day_transactions, args.copies, env, args.rerun)
            if not args.skip_year:
                figures["year_rfm"] = bench_year_rfm(settings, spark, args.year_days, args.year_daily_transactions, env)
    finally:
        spark.stop()
    out = live.state_dir / "bench" / "daily_batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"figures: {out}")


if __name__ == "__main__":
    main()
