"""Several streaming apps in one Spark application: the local default.

On a single machine every spark-submit costs a JVM (its JIT, GC and Kafka consumer threads),
a Python driver and a pool of Python workers. Hosting every app in one application shares
all of that; each app still has its own queries, checkpoints and FAIR scheduler pool
(``globalmart.streaming.runner``), so an app can move to its own spark-submit (one per app
on a cluster) and resume from the same checkpoints.

    spark-submit ... all_apps.py --apps sales_metrics,anomaly_detector [--available-now]
"""

from __future__ import annotations

import argparse
import importlib

from globalmart.streaming.launch import APPS
from globalmart.streaming.runner import run

NAME = "all_apps"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated apps to host (default: all)")
    known, rest = parser.parse_known_args(argv)
    apps = known.apps.split(",")
    unknown = sorted(set(apps) - set(APPS))
    if unknown:
        parser.error(f"unknown streaming apps {unknown}; choose from {', '.join(APPS)}")
    run(NAME, {app: importlib.import_module(f"spark_jobs.streaming.{app}").start_queries for app in apps}, rest)


if __name__ == "__main__":
    main()
