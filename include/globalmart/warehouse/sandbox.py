"""A private daily-batch environment beside the running platform, for tests and benchmarks.

Its own PostgreSQL database (migrated, holding the catalog of the given size), MongoDB
database, lake, staging area and Great Expectations folder; everything is removed on exit.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pymongo import MongoClient

from globalmart import db
from globalmart.generator.service import load_catalog
from globalmart.platform.launcher import create_database, drop_database
from globalmart.settings import Settings


@contextmanager
def warehouse_sandbox(settings: Settings, name: str, catalog: dict | None = None) -> Iterator[Settings]:
    """Settings of the sandbox; ``catalog``: overrides of ``settings.catalog`` (e.g. a smaller shop)."""
    tag = f"{name}_{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix=f"globalmart_{tag}_"))
    private = settings.model_copy(update={
        "catalog": settings.catalog.model_copy(update=catalog or {}),
        "postgres": settings.postgres.model_copy(update={"database": f"globalmart_{tag}"}),
        "mongo": settings.mongo.model_copy(update={"database": f"globalmart_{tag}"}),
        "lake_dir": folder / "lake",
        "warehouse_dir": folder / "warehouse",
        "great_expectations_dir": folder / "great_expectations",
    })
    # the superuser reaches PostgreSQL through the live state dir's socket
    create_database(settings, private.postgres.database)
    try:
        db.upgrade(private)
        load_catalog(private)
        yield private
    finally:
        MongoClient(private.mongo.uri).drop_database(private.mongo.database)
        drop_database(settings, private.postgres.database)
        shutil.rmtree(folder, ignore_errors=True)
