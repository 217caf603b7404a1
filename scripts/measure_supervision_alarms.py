"""False alarms of the streaming supervision, and stock after two traffic runs, on the live platform.

Starts a ``streaming_pipeline`` run hosting every app (through Airflow's REST API), then:
1. start-up: waits until every query has reported, counting the incidents opened meanwhile;
2. idle: no traffic for ``--idle-minutes`` (only the platform's clock ticks);
3. traffic: two consecutive generator runs (a realtime run, then a one-day backfill), then
   waits until the apps have caught up;
and prints, per phase, the incidents opened and emails sent (``stream_incidents``), then the
products whose stock is below zero and the oversold data-quality alerts. Finally the run is
marked success, which stops the apps. Needs `make run`; takes ~idle minutes + 10 minutes.

    .venv/bin/python scripts/measure_supervision_alarms.py --idle-minutes 10
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from globalmart import db
from globalmart.generator import service
from globalmart.generator.traffic import TrafficConfig
from globalmart.settings import load_settings
from globalmart.kafka_admin import end_offsets
from globalmart.streaming.clock import CLOCK_TOPICS
from globalmart.streaming.control import PIPELINE_DAG, AirflowApi, poll_until
from globalmart.streaming.health import committed_offsets
from globalmart.streaming.launch import APPS


def incidents_since(settings, moment: datetime) -> list[dict]:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT subject, problem, reason, opened_at, closed_at FROM stream_incidents WHERE opened_at >= %s "
                    "ORDER BY opened_at", (moment,))
        return [dict(zip(("subject", "problem", "reason", "opened_at", "closed_at"), row, strict=True))
                for row in cur.fetchall()]


def emails(incidents: list[dict]) -> int:
    """One email when an incident opens, one more when it closes."""
    return sum(1 + (incident["closed_at"] is not None) for incident in incidents)


def every_query_reported(settings, since: datetime) -> bool:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(DISTINCT query_name) FROM stream_progress WHERE trigger_at >= %s", (since,))
        return cur.fetchone()[0] >= 10


def caught_up(settings, ends: dict[str, dict[str, int]]) -> bool:
    """Every query has committed past ``ends`` (the topics' end offsets when the traffic stopped;
    the clock's ticks keep coming, so "no new input" never happens)."""
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT ON (query_name) end_offsets FROM stream_progress ORDER BY query_name, trigger_at DESC")
        latest = [committed_offsets(row[0]) for row in cur.fetchall()]
    return bool(latest) and all(
        committed.get(topic, {}).get(partition, 0) >= offset
        for committed in latest for topic in committed for partition, offset in ends.get(topic, {}).items()
    )


def stock_figures(settings, since: datetime) -> dict:
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(min(stock), 0) FROM inventory_stock WHERE stock < 0")
        negative, lowest = cur.fetchone()
        cur.execute("SELECT count(*), count(DISTINCT detail->>'about') FROM alerts "
                    "WHERE kind = 'data_quality.oversold' AND created_at >= %s", (since,))
        alerts, products = cur.fetchone()
    return {"products_below_zero": negative, "lowest_stock": lowest, "oversold_alerts_during_the_runs": alerts,
            "products_oversold_during_the_runs": products}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-minutes", type=float, default=10)
    parser.add_argument("--realtime-minutes", type=float, default=2)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--daily-transactions", type=int, default=5000)
    args = parser.parse_args()
    settings = load_settings()
    report = {}
    with AirflowApi(settings) as api:
        if api.running_run() is not None:
            raise SystemExit("a streaming_pipeline run is already running: stop it first")
        api._json("PATCH", f"/api/v2/dags/{PIPELINE_DAG}", json={"is_paused": False})
        started = datetime.now(UTC)
        run_id = api._json("POST", f"/api/v2/dags/{PIPELINE_DAG}/dagRuns",
                           json={"logical_date": None, "conf": {"apps": list(APPS)}})["dag_run_id"]
        try:
            poll_until("every query reported", lambda: every_query_reported(settings, started), timeout=900, every=5)
            ready = datetime.now(UTC)
            report["start"] = {"seconds": round((ready - started).total_seconds())}
            time.sleep(args.idle_minutes * 60)  # the idle period under test: nothing to wait for
            idle_end = datetime.now(UTC)
            config = TrafficConfig(mode="realtime", rate=args.rate, seed=101)
            first = service.generate(settings, config, minutes=args.realtime_minutes, quiet=True)
            second = service.generate(settings, TrafficConfig(mode="backfill", days=1, seed=102,
                                                              daily_transactions=args.daily_transactions), quiet=True)
            ends = end_offsets(settings, list(CLOCK_TOPICS))
            poll_until("the apps caught up", lambda: caught_up(settings, ends), timeout=900, every=10)
            done = datetime.now(UTC)
            phases = {"start": (started, ready), "idle": (ready, idle_end), "traffic": (idle_end, done)}
            everything = incidents_since(settings, started)
            for phase, (begin, end) in phases.items():
                opened = [i for i in everything if begin <= i["opened_at"] < end]
                report.setdefault(phase, {}).update({"incidents": len(opened), "emails": emails(opened),
                                                     "what": [f"{i['subject']} {i['problem']}: {i['reason']}" for i in opened]})
            report["traffic"]["runs"] = [first.as_dict()["sent"], second.as_dict()["sent"]]
            report["stock"] = stock_figures(settings, started)
        finally:
            api._json("PATCH", f"/api/v2/dags/{PIPELINE_DAG}/dagRuns/{run_id}", json={"state": "success"})
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
