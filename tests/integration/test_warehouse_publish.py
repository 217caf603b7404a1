"""Publishing dimensions into FerretDB: merged by key, whatever order days are loaded in."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from pymongo import MongoClient

from globalmart.warehouse.publish import _merge_dimension

MONDAY = {"customer_key": "U1", "country": "UK", "first_seen": datetime(2026, 11, 16, 9),
          "last_seen": datetime(2026, 11, 16, 18)}
TUESDAY = {**MONDAY, "country": "France", "first_seen": datetime(2026, 11, 17, 8), "last_seen": datetime(2026, 11, 17, 20)}
NEWCOMER = {"customer_key": "U2", "country": "USA", "first_seen": datetime(2026, 11, 17, 10),
            "last_seen": datetime(2026, 11, 17, 10)}


@pytest.fixture
def databases(platform):
    """Two empty MongoDB databases, dropped afterwards."""
    client = MongoClient(platform.mongo.uri)
    names = [f"test_publish_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    yield [client[name] for name in names]
    for name in names:
        client.drop_database(name)


@pytest.fixture
def database(databases):
    return databases[0]


def load(database, table: str, *days: list[dict]) -> list[tuple[int, int, int]]:
    """Merge each day's documents (copies: the publish step sets their _id) in order; what each
    did: (inserted, updated, unchanged)."""
    changes = (_merge_dimension(database, table, iter([[dict(d) for d in day]]), writers=2) for day in days)
    return [(change["inserted"], change["updated"], change["unchanged"]) for change in changes]


def test_customers_merge_to_the_same_documents_whatever_order_days_are_loaded_in(databases):
    forward, backward = databases
    assert load(forward, "dim_customer", [MONDAY], [TUESDAY, NEWCOMER]) == [(1, 0, 0), (1, 1, 0)]  # U1 takes Tuesday's country
    assert load(backward, "dim_customer", [TUESDAY, NEWCOMER], [MONDAY]) == [(2, 0, 0), (0, 1, 0)]  # U1 takes Monday's first_seen
    expected = [{**TUESDAY, "_id": "U1", "first_seen": MONDAY["first_seen"]}, {**NEWCOMER, "_id": "U2"}]
    for database in databases:
        assert list(database.dim_customer.find().sort("_id")) == expected


def test_loading_a_day_again_changes_nothing(database):
    load(database, "dim_customer", [MONDAY], [TUESDAY])
    before = list(database.dim_customer.find().sort("_id"))
    assert load(database, "dim_customer", [TUESDAY], [MONDAY]) == [(0, 0, 1), (0, 0, 1)]
    assert list(database.dim_customer.find().sort("_id")) == before


def test_a_reference_dimension_takes_the_staged_attributes(database):
    old = {"payment_method": "paypal", "name": "Paypal", "kind": "digital wallet"}
    new = {**old, "name": "PayPal"}
    assert load(database, "dim_payment_method", [old], [new], [new]) == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert list(database.dim_payment_method.find()) == [{**new, "_id": "paypal"}]
