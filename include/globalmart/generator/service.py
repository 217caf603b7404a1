"""What the CLI and the ``traffic_simulator`` DAG call: load the catalog, then generate."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from globalmart.generator.catalog import get_catalog
from globalmart.generator.catalog_store import load_products
from globalmart.generator.publisher import Progress, RunReport, run
from globalmart.generator.stock_ledger import StockLedger
from globalmart.generator.traffic import TrafficConfig, backfill_window
from globalmart.settings import Settings


def load_catalog(settings: Settings, force: bool = False) -> tuple[int, str]:
    """Products written (0 if this catalog was already loaded) and the catalog's fingerprint."""
    catalog = get_catalog(settings.catalog, settings.generator)
    return load_products(settings, catalog, force=force), catalog.fingerprint


class BackfillTooOld(ValueError):
    """A backfill older than the contract accepts: every event would be a dead letter."""


def check_backfill_fits_the_contract(settings: Settings, config: TrafficConfig, now: datetime | None = None) -> None:
    if config.mode != "backfill":
        return
    start_ms, _ = backfill_window(config)
    oldest = datetime.fromtimestamp(start_ms / 1000, UTC)
    limit = (now or datetime.now(UTC)) - timedelta(hours=settings.contracts.max_event_age_hours)
    if oldest < limit:
        raise BackfillTooOld(
            f"a backfill from {oldest:%Y-%m-%d} reaches back further than the event contract accepts "
            f"({settings.contracts.max_event_age_hours:.0f} h, contracts.max_event_age_hours): its events would all be "
            f"dead letters; send fewer or later days (the daily batch's lake can be filled with globalmart.generator.lake)"
        )


def generate(
    settings: Settings,
    config: TrafficConfig,
    *,
    minutes: float | None = None,
    max_events: int | None = None,
    stop: threading.Event | None = None,
    quiet: bool = False,
) -> RunReport:
    """One run of the shop's traffic, selling from the stock the last run and the inventory
    tracker leave (``stock_rules``), never from more."""
    check_backfill_fits_the_contract(settings, config)
    load_catalog(settings)  # the inventory tracker counts stock from the catalog's initial stock
    progress = Progress(settings.generator.progress_seconds, enabled=not quiet)
    with StockLedger(settings, get_catalog(settings.catalog, settings.generator)) as ledger:
        return run(
            settings, config, minutes=minutes, max_events=max_events, stop=stop, progress=progress, stock_ledger=ledger
        )


def generate_from_params(settings: Settings, params: dict) -> dict:
    """The ``traffic_simulator`` DAG's task: trigger-form params in, run report out (to XCom)."""
    end_date = params.get("end_date")
    config = TrafficConfig(
        mode=params["mode"],
        rate=params.get("rate"),
        seed=params.get("seed"),
        anomaly_rate=params.get("anomaly_rate"),
        days=int(params.get("days") or 1),
        end_date=date.fromisoformat(end_date) if end_date else None,
        malformed_rate=float(params.get("malformed_rate") or 0.0),
    )
    minutes = None if config.mode == "backfill" else float(params["minutes"])
    report = generate(settings, config, minutes=minutes)
    summary = report.as_dict()
    if not report.ok:
        raise RuntimeError(f"{summary['delivery_failures']} delivery failures, {report.undelivered} undelivered: {summary['delivery_errors']}")
    return summary
