"""Publishing dimensions into FerretDB: reference dimensions merged by key; stateful ones
(customers, products) written as the documents that changed against their state, which is
then promoted, refused when staged from another state than the one the warehouse holds, and
written whole when the warehouse has lost it."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymongo import MongoClient

from globalmart.warehouse import sources
from globalmart.warehouse.publish import STATE, StaleState, _merge_dimension, _publish_stateful

MONDAY, TUESDAY = date(2026, 11, 16), date(2026, 11, 17)
HISTORY = pa.list_(pa.struct([("rfm_segment", pa.string()), ("valid_from", pa.date32()), ("valid_to", pa.date32())]))


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


def test_a_reference_dimension_takes_the_staged_attributes(database):
    old = {"payment_method": "paypal", "name": "Paypal", "kind": "digital wallet"}
    new = {**old, "name": "PayPal"}
    assert load(database, "dim_payment_method", [old], [new], [new]) == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert list(database.dim_payment_method.find()) == [{**new, "_id": "paypal"}]


def customer(key: str, segment: str, versions: list[tuple[str, date, date | None]], as_of: date) -> dict:
    return {"customer_key": key, "name": f"Customer {key}", "lifetime_revenue": Decimal("12.50"), "rfm_segment": segment,
            "segment_history": [{"rfm_segment": s, "valid_from": f, "valid_to": t} for s, f, t in versions],
            "segment_since": versions[-1][1], "as_of": as_of}


def stage(settings, day: date, changed: list[tuple[dict, str]], current: list[dict], base: str) -> str:
    """A day's staged dim_customer as the rfm step leaves it: the changed documents, the new
    state (current rows; history left empty, publishing does not read it) and its markers;
    the new state's generation."""
    schema = pa.schema([("customer_key", pa.string()), ("name", pa.string()),
                        ("lifetime_revenue", pa.decimal128(18, 2)), ("rfm_segment", pa.string()),
                        ("segment_history", HISTORY), ("segment_since", pa.date32()), ("as_of", pa.date32())])
    table = sources.staged_path(settings, day, "dim_customer")
    state = sources.staged_state_path(settings, day, "dim_customer")
    for folder in (table, state / "current", state / "history"):
        folder.mkdir(parents=True, exist_ok=True)
    changes = pa.Table.from_pylist([{**d, "_change": change} for d, change in changed],
                                   schema.append(pa.field("_change", pa.string())))
    pq.write_table(changes.drop_columns(["as_of"]), table / "part-0.parquet")
    (table / "_SUCCESS").touch()
    rows = pa.Table.from_pylist(current, schema)
    pq.write_table(rows.append_column("digest", pa.array([0] * len(current), pa.int64())),
                   state / "current" / "part-0.parquet")
    generation = uuid.uuid4().hex
    (state / sources.BASE_FILE).write_text(base)
    (state / sources.GENERATION_FILE).write_text(generation)
    return generation


def test_stateful_dimensions_write_what_changed_and_promote_their_state(database, platform, tmp_path):
    settings = platform.model_copy(update={"warehouse_dir": tmp_path})
    u1 = customer("U1", "New Customers", [("New Customers", MONDAY, None)], MONDAY)
    u2 = customer("U2", "Lost", [("Lost", MONDAY, None)], MONDAY)
    monday = stage(settings, MONDAY, [(u1, "inserted"), (u2, "inserted")], [u1, u2], base="")
    assert _publish_stateful(database, settings, "dim_customer", MONDAY, 1, 2) == {
        "inserted": 2, "updated": 0, "unchanged": 0}
    stored = database.dim_customer.find_one({"_id": "U1"})
    assert set(stored) == {"_id", "customer_key", "name", "lifetime_revenue", "rfm_segment", "segment_history",
                           "segment_since"}  # no staging columns
    assert stored["segment_history"] == [{"rfm_segment": "New Customers", "valid_from": datetime(2026, 11, 16),
                                          "valid_to": None}]
    assert stored["lifetime_revenue"] == 12.5
    published = sources.published_state_path(settings, "dim_customer")
    assert sources.state_generation(published) == monday == database[STATE].find_one({"_id": "dim_customer"})["generation"]

    # Tuesday: U1 moves segment, U2 unchanged (not staged as a change)
    moved = customer("U1", "Champions", [("New Customers", MONDAY, TUESDAY), ("Champions", TUESDAY, None)], TUESDAY)
    tuesday = stage(settings, TUESDAY, [(moved, "updated")], [moved, u2], base=monday)
    assert _publish_stateful(database, settings, "dim_customer", TUESDAY, 10, 2) == {
        "inserted": 0, "updated": 1, "unchanged": 1}
    assert database.dim_customer.find_one({"_id": "U1"})["segment_since"] == datetime(2026, 11, 17)
    assert sources.state_generation(published) == tuesday

    # staged from Monday's state after Tuesday's was published: refused, nothing written
    stage(settings, TUESDAY, [(u1, "updated")], [u1, u2], base=monday)
    with pytest.raises(StaleState, match="re-run the day"):
        _publish_stateful(database, settings, "dim_customer", TUESDAY, 10, 2)
    assert database.dim_customer.find_one({"_id": "U1"})["rfm_segment"] == "Champions"

    # the warehouse lost its collections: the whole staged state is written again
    database.drop_collection("dim_customer")
    database.drop_collection(STATE)
    stage(settings, TUESDAY, [], [moved, u2], base=tuesday)
    assert _publish_stateful(database, settings, "dim_customer", TUESDAY, 10, 2)["inserted"] == 2
    assert database.dim_customer.find_one({"_id": "U1"})["rfm_segment"] == "Champions"


def test_many_changed_documents_are_written_without_hanging_the_server(database, platform, tmp_path):
    """FerretDB 1.24 hangs on a bulk request of ~50 matching updates: the changes go in small requests."""
    settings = platform.model_copy(update={"warehouse_dir": tmp_path})
    before = [customer(f"U{n:03d}", "Lost", [("Lost", MONDAY, None)], MONDAY) for n in range(150)]
    monday = stage(settings, MONDAY, [(d, "inserted") for d in before], before, base="")
    assert _publish_stateful(database, settings, "dim_customer", MONDAY, 1000, 3)["inserted"] == 150
    after = [customer(f"U{n:03d}", "At Risk", [("Lost", MONDAY, TUESDAY), ("At Risk", TUESDAY, None)], TUESDAY)
             for n in range(150)]
    stage(settings, TUESDAY, [(d, "updated") for d in after], after, base=monday)
    assert _publish_stateful(database, settings, "dim_customer", TUESDAY, 1000, 3) == {
        "inserted": 0, "updated": 150, "unchanged": 0}
    assert database.dim_customer.count_documents({"rfm_segment": "At Risk"}) == 150
