"""``globalmart`` command line.

- ``globalmart platform up|down|status``: the local platform
- ``globalmart generate ...``: shopper traffic into Kafka (``--help`` for the modes)
- ``globalmart catalog load``: the product catalog with initial stock into PostgreSQL
- ``globalmart db upgrade``: apply the PostgreSQL migrations
- ``globalmart schemas export``: write the event contracts as JSON Schema into ``schemas/``
- ``globalmart stream run [APP ...] [--available-now]``: streaming apps in one Spark application, in the foreground
- ``globalmart stream status``: every streaming query's last heartbeat, batch and error
- ``globalmart clock``: ClockTicks on the event topics until stopped (a platform service)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import date

from globalmart.platform import launcher
from globalmart.settings import load_settings
from globalmart.streaming.launch import APPS


def _platform(args) -> int:
    try:
        if args.action == "up":
            launcher.up()
        elif args.action == "down":
            launcher.down()
        else:
            return 0 if launcher.status() else 1
    except launcher.PlatformError as exc:
        print(f"[platform] error: {exc}", file=sys.stderr)
        return 2
    return 0


def _generate(args) -> int:
    from globalmart.generator import service
    from globalmart.generator.malformed import MALFORMED_KINDS
    from globalmart.generator.publisher import GeneratorError
    from globalmart.generator.traffic import TrafficConfig

    settings = load_settings()
    kinds = args.malformed_kinds.split(",") if args.malformed_kinds else list(MALFORMED_KINDS)
    try:
        config = TrafficConfig(
            mode=args.mode,
            rate=args.rate,
            seed=args.seed,
            anomaly_rate=args.anomaly_rate,
            days=args.days,
            end_date=args.end_date,
            daily_transactions=args.daily_transactions,
            malformed_rate=args.malformed_rate,
            malformed_kinds=kinds,
        )
    except ValueError as exc:
        print(f"[generate] error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # finish cleanly: stop, flush, report
        signal.signal(sig, lambda *_: stop.set())
    try:
        report = service.generate(
            settings, config, minutes=args.minutes, max_events=args.events, stop=stop, quiet=args.quiet
        )
    except (GeneratorError, service.BackfillTooOld) as exc:
        print(f"[generate] error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.ok else 1


def _catalog(args) -> int:
    from globalmart.generator import service

    settings = load_settings()
    written, fingerprint = service.load_catalog(settings, force=args.force)
    what = f"{written:,} products written" if written else "already loaded"
    print(f"[catalog] {fingerprint}: {what}")
    return 0


def _db(args) -> int:
    from globalmart import db

    print(f"[db] globalmart database at migration {db.upgrade(load_settings())}")
    return 0


def _schemas(args) -> int:
    from globalmart.events import export_json_schemas

    for path in export_json_schemas():
        print(path)
    return 0


def _stream(args) -> int:
    import os

    from globalmart import db
    from globalmart.settings import env_overrides
    from globalmart.spark import submit_environment
    from globalmart.streaming.launch import app_command

    settings = load_settings()
    if args.action == "run":
        try:
            command = app_command(settings, args.apps or APPS, settings.checkpoints_dir, args.available_now)
        except ValueError as error:
            print(f"[stream] {error}", file=sys.stderr)
            return 2
        os.execve(command[0], command, {**os.environ, **submit_environment(settings), **env_overrides(settings)})
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT query_name, status, last_batch_id, now() - last_seen_at, error FROM stream_status ORDER BY 1")
        rows = cur.fetchall()
    if not rows:
        print("[stream] no streaming query has run yet (start them with `globalmart stream run`)")
    for name, status, batch, age, error in rows:
        print(f"  {name:<32} {status:<8} batch {batch if batch is not None else '-':>7}  "
              f"seen {age.total_seconds():7.0f} s ago" + (f"  error: {error.splitlines()[0][:100]}" if error else ""))
    return 0


def _clock(args) -> int:
    import logging

    from globalmart.streaming.clock import publish_ticks, run_clock

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    if args.once:
        print(f"[clock] {publish_ticks(settings)} ticks sent")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_clock(settings, stop)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="globalmart", description="GlobalMart analytics platform")
    commands = root.add_subparsers(dest="command", required=True)

    platform = commands.add_parser("platform", help="the local platform (every service a local process)")
    platform.add_argument("action", choices=["up", "down", "status"])
    platform.set_defaults(handler=_platform)

    generate = commands.add_parser(
        "generate",
        help="publish shopper traffic to Kafka",
        description="Sessions that browse, fill carts, buy or abandon, with injected anomalies and ground truth. "
        "Modes: realtime (paced at --rate events/s), fast (as fast as possible, current event times), "
        "backfill (--days past days at the catalog's daily volume).",
    )
    generate.add_argument("--mode", choices=["realtime", "fast", "backfill"], default="realtime")
    generate.add_argument("--rate", type=float, help="realtime: events per second (default from settings)")
    generate.add_argument("--minutes", type=float, help="stop after this many minutes (realtime, fast)")
    generate.add_argument("--events", type=int, help="stop after this many events")
    generate.add_argument("--seed", type=int, help="same seed, same events (default: random, printed)")
    generate.add_argument("--anomaly-rate", type=float, help="share of transactions that are anomalies (default 0.02)")
    generate.add_argument("--days", type=int, default=1, help="backfill: number of past days")
    generate.add_argument("--end-date", type=date.fromisoformat, help="backfill: the day after the last (default today)")
    generate.add_argument("--daily-transactions", type=int, help="backfill: transactions per day")
    generate.add_argument("--malformed-rate", type=float, default=0.0, help="share of events to break on purpose")
    generate.add_argument("--malformed-kinds", help="comma-separated kinds to break (default: all)")
    generate.add_argument("--quiet", action="store_true", help="no progress line")
    generate.set_defaults(handler=_generate)

    catalog = commands.add_parser("catalog", help="the simulated shop's catalog")
    catalog.add_argument("action", choices=["load"])
    catalog.add_argument("--force", action="store_true", help="write even if this catalog is already loaded")
    catalog.set_defaults(handler=_catalog)

    database = commands.add_parser("db", help="the globalmart PostgreSQL database")
    database.add_argument("action", choices=["upgrade"])
    database.set_defaults(handler=_db)

    schemas = commands.add_parser("schemas", help="event contracts")
    schemas.add_argument("action", choices=["export"])
    schemas.set_defaults(handler=_schemas)

    stream = commands.add_parser("stream", help="the Spark streaming apps")
    stream.add_argument("action", choices=["run", "status"])
    stream.add_argument("apps", nargs="*", metavar="APP",
                        help=f"run: the apps to host in one Spark application (default: all of {', '.join(APPS)})")
    stream.add_argument("--available-now", action="store_true", help="run: process what the topics hold, then stop")
    stream.set_defaults(handler=_stream)

    clock = commands.add_parser("clock", help="ClockTicks on the event topics, so that sessions close while traffic pauses")
    clock.add_argument("--once", action="store_true", help="one tick on every partition, then exit")
    clock.set_defaults(handler=_clock)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
