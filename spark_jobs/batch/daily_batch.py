"""spark-submit entry point of the daily_batch DAG: one step over a day or a range of days.

    spark-submit spark_jobs/batch/daily_batch.py <step> --start 2026-11-20 [--end 2026-11-22]

Steps (``globalmart.warehouse.steps``): gate_raw, etl, rfm, products, trends, gate_outputs.
A failed gate exits with status 3, its failing expectations saved for the DAG to email.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date

GATE_FAILED_EXIT = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from globalmart.warehouse.steps import STEPS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first day (UTC), YYYY-MM-DD")
    parser.add_argument("--end", type=date.fromisoformat, help="last day, inclusive (default: --start)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from pyspark.sql import SparkSession

    from globalmart.settings import get_settings
    from globalmart.warehouse.sources import days_between
    from globalmart.warehouse.steps import STEPS, GateFailed

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    # Great Expectations logs a thousand INFO lines about its own registries at import
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    args = parse_args(argv)
    days = days_between(args.start, args.end or args.start)
    spark = SparkSession.builder.appName(f"daily_batch.{args.step}").getOrCreate()
    started = time.monotonic()
    try:
        STEPS[args.step](spark, get_settings(), days)
    except GateFailed as failed:
        logging.error("%s", failed)
        sys.exit(GATE_FAILED_EXIT)
    finally:
        spark.stop()
    logging.info("daily_batch %s for %s..%s done in %.1f s", args.step, days[0], days[-1], time.monotonic() - started)


if __name__ == "__main__":
    main()
