"""Small generated lake days for the daily batch's tests, and a fingerprint of the published warehouse."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from pymongo import MongoClient

from globalmart.settings import Settings
from globalmart.warehouse import sandbox
from globalmart.warehouse.sources import TABLES

# a small shop keeps fixture days quick to generate and to publish
SMALL_CATALOG = {"users": 5_000, "products": 1_000, "daily_transactions": 150}
# the day after the last fixture day: fixed, so every run sees the same calendar
END_DATE = date(2026, 10, 8)


@contextmanager
def warehouse_sandbox(settings: Settings, name: str) -> Iterator[Settings]:
    with sandbox.warehouse_sandbox(settings, name, SMALL_CATALOG) as private:
        yield private


def warehouse_snapshot(settings: Settings) -> dict[str, tuple[int, str]]:
    """Every published table: (documents, a digest of their content in _id order)."""
    database = MongoClient(settings.mongo.uri)[settings.mongo.database]
    snapshot = {}
    for table in TABLES:
        digest, count = hashlib.sha256(), 0
        for document in database[table].find().sort("_id", 1):
            digest.update(repr(sorted(document.items())).encode())
            count += 1
        snapshot[table] = (count, digest.hexdigest())
    return snapshot
