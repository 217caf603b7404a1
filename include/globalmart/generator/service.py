"""What the CLI and the ``traffic_simulator`` DAG call: load the catalog, then generate."""

from __future__ import annotations

import threading

from globalmart.generator.catalog import get_catalog
from globalmart.generator.catalog_store import load_products
from globalmart.generator.publisher import Progress, RunReport, run
from globalmart.generator.traffic import TrafficConfig
from globalmart.settings import Settings


def load_catalog(settings: Settings, force: bool = False) -> tuple[int, str]:
    """Products written (0 if this catalog was already loaded) and the catalog's fingerprint."""
    catalog = get_catalog(settings.catalog, settings.generator)
    return load_products(settings, catalog, force=force), catalog.fingerprint


def generate(
    settings: Settings,
    config: TrafficConfig,
    *,
    minutes: float | None = None,
    max_events: int | None = None,
    stop: threading.Event | None = None,
    quiet: bool = False,
) -> RunReport:
    load_catalog(settings)  # the inventory tracker counts stock from the catalog's initial stock
    progress = Progress(settings.generator.progress_seconds, enabled=not quiet)
    return run(settings, config, minutes=minutes, max_events=max_events, stop=stop, progress=progress)
