"""How long from a streaming app's death to its restart under the streaming_pipeline DAG.

Needs the platform (`make run`). Starts a streaming_pipeline run hosting one app (default
sales_metrics), feeds it a trickle of transactions (valid by contract, user ids ``U-restart-*``)
so that it makes micro-batches, then
SIGKILLs its spark-submit JVM ``--kills`` times. For each death it prints when

- the task failed and its retry started (Airflow: the backoff delay),
- a new spark-submit JVM was running,
- the app's queries reported again (new run ids in stream_status: the heartbeat),
- the first micro-batch after the death completed (stream_progress): *the restart*.

The run is stopped at the end (and the DAG re-paused if it was). Results also go to
``<state>/bench/streaming_restart.json``. Retries back off exponentially, so each further
kill of the same run waits longer before its restart: the first kill is the typical figure.

    .venv/bin/python scripts/measure_streaming_restart.py [--kills 2] [--app sales_metrics] [--rate 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer

from globalmart.events import Transaction
from globalmart.settings import get_settings
from globalmart.streaming.control import (
    AirflowApi,
    first_progress_after,
    pipeline_jvms,
    poll_until,
    process_task,
    query_runs,
)
from globalmart.streaming.launch import APPS


def wait_for(what: str, check, timeout: float):
    return poll_until(what, check, timeout, every=0.5)


def seconds(start: datetime, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 1) if end else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="sales_metrics", choices=APPS)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--rate", type=int, default=20, help="transactions per second fed during the measurement")
    args = parser.parse_args()
    settings = get_settings()
    task = process_task(settings, args.app)

    with AirflowApi(settings) as api:
        if api.running_run() is not None:
            sys.exit("a streaming_pipeline run is running: stop it first (this script kills its apps)")
        was_paused = api._json("GET", "/api/v2/dags/streaming_pipeline")["is_paused"]
        api._json("PATCH", "/api/v2/dags/streaming_pipeline", json={"is_paused": False})
        run = api._json("POST", "/api/v2/dags/streaming_pipeline/dagRuns",
                        json={"logical_date": None, "conf": {"apps": [args.app]}})["dag_run_id"]
    print(f"started run {run} hosting {args.app}; feeding {args.rate} transactions/s", flush=True)
    stop_feeding = threading.Event()
    feeder = threading.Thread(target=feed, args=(settings, args.rate, stop_feeding), daemon=True)
    feeder.start()
    results = []
    try:
        started = datetime.now(UTC)
        wait_for(f"{args.app}'s first micro-batch", lambda: first_progress_after(settings, [args.app], started), 300)
        # each kill comes once the app made progress: after its first batch, then after the last restart's
        for kill in range(1, args.kills + 1):
            before = query_runs(settings, [args.app])
            (jvm,) = wait_for("the spark-submit JVM", lambda: pipeline_jvms(run, task), 60)
            died = datetime.now(UTC)
            os.kill(jvm, signal.SIGKILL)
            new = wait_for("a new JVM", lambda: [p for p in pipeline_jvms(run, task) if p != jvm], 900)
            jvm_at = datetime.now(UTC)
            heartbeat_at = wait_for("new query runs", lambda: _restarted_at(settings, args.app, before), 300)
            progress_at = wait_for("the first batch after the restart",
                                   lambda: first_progress_after(settings, [args.app], died), 300)
            with AirflowApi(settings) as api:
                ti = api.task_instance(run, task)
            retry_started = datetime.fromisoformat(ti["start_date"])
            result = {"kill": kill, "try_number": ti["try_number"], "died_at": died.isoformat(),
                      "retry_started_s": seconds(died, retry_started), "new_jvm_s": seconds(died, jvm_at),
                      "queries_reporting_s": seconds(died, heartbeat_at), "first_batch_done_s": seconds(died, progress_at),
                      "new_jvm_pid": new[0]}
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        stop_feeding.set()
        feeder.join(30)
        with AirflowApi(settings) as api:
            api._json("PATCH", f"/api/v2/dags/streaming_pipeline/dagRuns/{run}", json={"state": "failed"})
            api._json("PATCH", "/api/v2/dags/streaming_pipeline", json={"is_paused": was_paused})
        wait_for("the pipeline's JVM to exit", lambda: not pipeline_jvms(run, task), 60)
    if results:
        firsts = [r["first_batch_done_s"] for r in results]
        print(f"\ndeath → first micro-batch after the restart: {', '.join(f'{s} s' for s in firsts)} "
              f"(kill 1: {firsts[0]} s; median {round(statistics.median(firsts), 1)} s)")
        print("  of which: retry backoff + task start "
              f"{', '.join(str(r['retry_started_s']) for r in results)} s; new JVM "
              f"{', '.join(str(r['new_jvm_s']) for r in results)} s; queries reporting "
              f"{', '.join(str(r['queries_reporting_s']) for r in results)} s")
        out = settings.state_dir / "bench" / "streaming_restart.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"app": args.app, "rate": args.rate, "run_id": run, "kills": results}, indent=2))
        print(f"written to {out}")


def feed(settings, rate: int, stop: threading.Event) -> None:
    """``rate`` small valid transactions a second to the transactions topic until ``stop``."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    catalog = settings.catalog
    while not stop.wait(1):
        now = datetime.now(UTC)
        for n in range(rate):
            tx = Transaction(
                event_time=now, transaction_id=f"T-restart-{uuid.uuid4().hex}", user_id=f"U-restart-{n % 50}",
                session_id=f"S-restart-{n % 50}", country=catalog.countries[n % len(catalog.countries)],
                payment_method=catalog.payment_methods[0],
                items=[{"product_id": "P000001", "category": "restart measurement", "quantity": 1, "unit_price": 10.0}],
                total_amount=10.0,
            )
            producer.produce(settings.kafka.transactions.name, key=tx.user_id.encode(), value=tx.model_dump_json().encode())
        producer.poll(0)
    producer.flush(10)


def _restarted_at(settings, app, before) -> datetime | None:
    now = query_runs(settings, [app])
    if all(name in now and now[name][0] != run_id for name, (run_id, _, _) in before.items()):
        return datetime.now(UTC)
    return None


if __name__ == "__main__":
    main()
