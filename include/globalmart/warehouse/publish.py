"""Publish: copy a day's audited staging area into the MongoDB warehouse, idempotently.

Only a day whose output gate passed after its tables were staged is published (the gate's
saved result is checked here too, not only by the DAG's order). Per table:

- facts and day-keyed tables (``fact_sales`` by ``date_key``, ``customer_rfm`` by
  ``analysis_date``, ``product_performance`` by ``date``, ``sales_trends`` by granularity and
  period start) replace the day's slice: delete it, insert the staged documents;
- ``dim_customer`` and ``dim_product`` are staged as the documents that changed against the
  dimension's state (:mod:`globalmart.warehouse.dimensions`): new ones are inserted, changed
  ones replaced by key, then the staged state is promoted as the one MongoDB holds. Its
  generation is recorded in MongoDB (``warehouse_state``): a state staged from another
  generation than the one MongoDB holds is refused (re-run the day), and when MongoDB records
  none (a new or emptied warehouse) the whole staged state is written;
- the other dimensions merge by key: new keys are inserted, a stored document is replaced only
  when an attribute differs.

Only what changed is written: each table's staged content of a day has a digest (its rows in
key order), recorded in ``warehouse_publications`` when published; a table whose digest is the
one recorded is left alone (re-publishing an unchanged day writes nothing).

Every document has a deterministic ``_id``, so loading a day twice leaves the same data.
Each table reports what it did (``TableChanges``): a dimension its documents inserted, updated
and unchanged; a day-keyed table the documents inserted and how many of the day's previous
ones they replaced, or its documents unchanged. A day also reports the gates it passed, for the summary email.

Written with pymongo bulk writes (``insert_many`` unordered, batches of
``warehouse.publish_batch_size``, ``warehouse.publish_writers`` in flight while the next batch
is converted): the staged Parquet is read with pyarrow without a Spark session, and on
FerretDB a bulk insert is ~30× faster than upserts document by document.
FerretDB 1.x has no Decimal128, so money is stored as doubles rounded to the cent; dates are
stored as UTC midnights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date, datetime, time as clock, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pymongo import ASCENDING, DESCENDING, ReplaceOne
from pymongo.errors import BulkWriteError
from pymongo.database import Database

from globalmart.settings import Settings
from globalmart.warehouse import sources

log = logging.getLogger(__name__)

Document = dict
# per table: inserted, updated, unchanged (dimensions), replaced (the day's previous documents
# of a day-keyed table, deleted before its staged ones were inserted)
TableChanges = dict[str, int]


class NotAudited(RuntimeError):
    """The day's staged tables have not passed the output gate since they were staged."""


def day_start(day: date) -> datetime:
    """How a date is stored: its UTC midnight (naive, as pymongo returns it)."""
    return datetime.combine(day, clock())


def _trend_periods(day: date) -> list[Document]:
    """The sales-trend periods that contain ``day`` (the ones its run stages)."""
    starts = {"daily": day, "weekly": day - timedelta(days=day.weekday()), "monthly": day.replace(day=1)}
    return [{"granularity": granularity, "period_start": day_start(start)} for granularity, start in starts.items()]


# day-keyed tables: the _id of a document, and the filters selecting a day's slice
SLICED: dict[str, tuple[Callable[[Document], str], Callable[[date], list[Document]]]] = {
    sources.FACT_SALES: (lambda d: f"{d['transaction_id']}:{d['line_number']}",
                         lambda day: [{"date_key": int(day.strftime("%Y%m%d"))}]),
    sources.CUSTOMER_RFM: (lambda d: f"{d['analysis_date']:%Y-%m-%d}:{d['user_id']}",
                           lambda day: [{"analysis_date": day_start(day)}]),
    sources.PRODUCT_PERFORMANCE: (lambda d: f"{d['date']:%Y-%m-%d}:{d['product_id']}",
                                  lambda day: [{"date": day_start(day)}]),
    sources.SALES_TRENDS: (lambda d: f"{d['granularity']}:{d['period_start']:%Y-%m-%d}:{d['country']}:{d['category']}",
                           _trend_periods),
}
DIMENSION_KEYS = {
    "dim_date": "date_key", "dim_customer": "customer_key", "dim_product": "product_key",
    "dim_geography": "country", "dim_payment_method": "payment_method",
}

# the API's queries: a day's sales by product, customer, country; a segment on a date; a
# category's ranking on a day; a series of trends
INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    sources.FACT_SALES: [[("date_key", ASCENDING)], [("product_key", ASCENDING), ("date_key", ASCENDING)],
                         [("customer_key", ASCENDING), ("date_key", ASCENDING)],
                         [("country", ASCENDING), ("date_key", ASCENDING)]],
    sources.CUSTOMER_RFM: [[("analysis_date", ASCENDING), ("rfm_segment", ASCENDING)],
                           [("user_id", ASCENDING), ("analysis_date", ASCENDING)]],
    sources.PRODUCT_PERFORMANCE: [[("date", ASCENDING), ("category", ASCENDING), ("rank_in_category", ASCENDING)],
                                  [("date", ASCENDING), ("performance_score", DESCENDING)],
                                  [("product_id", ASCENDING), ("date", ASCENDING)]],
    sources.SALES_TRENDS: [[("granularity", ASCENDING), ("country", ASCENDING), ("category", ASCENDING),
                            ("period_start", ASCENDING)]],
    "dim_customer": [[("country", ASCENDING)], [("rfm_segment", ASCENDING)]],
    "dim_product": [[("category", ASCENDING)], [("brand", ASCENDING)]],
}


def _mongo_type(arrow_type: pa.DataType, decimal_as: pa.DataType = pa.float64()) -> pa.DataType:
    """The Arrow type MongoDB stores a value of ``arrow_type`` as, nested types included
    (decimals as ``decimal_as``)."""
    if pa.types.is_decimal(arrow_type):
        return decimal_as
    if pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type):
        return pa.timestamp("ms")
    if pa.types.is_list(arrow_type):
        return pa.list_(_mongo_type(arrow_type.value_type, decimal_as))
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(field.name, _mongo_type(field.type, decimal_as)) for field in arrow_type])
    return arrow_type


def _mongo_ready(table: pa.Table) -> pa.Table:
    """Arrow types MongoDB stores: decimals → the nearest doubles, dates → UTC
    midnights, timestamps → ms (naive UTC); the same inside lists and structs."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_decimal(field.type):
            # through the text: the nearest double to the decimal (a direct cast or rounding in
            # floating point can land one unit off: 125.99 → 125.99000000000001)
            column = pc.cast(pc.cast(column, pa.string()), pa.float64())
        elif pa.types.is_date(field.type):
            column = pc.cast(pc.cast(column, pa.date64()), pa.timestamp("ms"))
        elif pa.types.is_timestamp(field.type):
            column = pc.cast(column, pa.timestamp("ms", tz=field.type.tz), safe=False).cast(pa.timestamp("ms"))
        elif pa.types.is_nested(field.type):
            # decimals through their text: a direct cast scales in floating point (16.99 → 16.990000000000002)
            column = pc.cast(pc.cast(column, _mongo_type(field.type, pa.string())), _mongo_type(field.type))
        columns.append(column)
    return pa.table(columns, names=table.schema.names)


def staged_documents(settings: Settings, day: date, table: str, batch_size: int,
                     path: os.PathLike | None = None) -> Iterator[list[Document]]:
    """The staged rows of ``table`` (or the Parquet at ``path``) as MongoDB documents,
    ``batch_size`` at a time."""
    dataset = ds.dataset(str(path or sources.staged_path(settings, day, table)), format="parquet")
    for batch in dataset.to_batches(batch_size=batch_size):
        if batch.num_rows:
            yield _mongo_ready(pa.Table.from_batches([batch])).to_pylist()


# the columns that order a table's rows for its digest: its key
DIGEST_KEYS = {
    sources.FACT_SALES: ["transaction_id", "line_number"], sources.CUSTOMER_RFM: ["user_id"],
    sources.PRODUCT_PERFORMANCE: ["product_id"], sources.SALES_TRENDS: ["granularity", "period_start", "country", "category"],
}
PUBLICATIONS = "warehouse_publications"  # (table, day) → digest of what was published
STATE = "warehouse_state"  # stateful dimension → the generation of the state MongoDB holds


def staged_digest(settings: Settings, day: date, table: str) -> tuple[str, int]:
    """(digest, rows) of the staged ``table``: its rows in key order, whatever files Spark wrote."""
    rows = ds.dataset(str(sources.staged_path(settings, day, table)), format="parquet").to_table()
    keys = DIGEST_KEYS.get(table) or [DIMENSION_KEYS[table]]
    ordered = rows.sort_by([(key, "ascending") for key in keys]).combine_chunks()  # one layout, whatever the files
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ordered.schema) as stream:
        stream.write_table(ordered)
    return hashlib.sha256(sink.getvalue()).hexdigest(), ordered.num_rows


def check_audited(settings: Settings, day: date) -> None:
    result = sources.load_gate_result(settings, day, sources.OUTPUT_GATE)
    gate_file = sources.gate_result_path(settings, day, sources.OUTPUT_GATE)
    if result is None or not result["success"]:
        raise NotAudited(f"{day}: the output gate has not passed ({gate_file}); run gate_outputs first")
    staged_at = max((sources.staged_path(settings, day, t) / "_SUCCESS").stat().st_mtime for t in sources.TABLES)
    if staged_at > gate_file.stat().st_mtime:
        raise NotAudited(f"{day}: tables were staged again after the output gate passed; run gate_outputs again")


def ensure_indexes(database: Database) -> None:
    for table, indexes in INDEXES.items():
        for keys in indexes:
            database[table].create_index(keys)


def write_batches(batches: Iterator[list[Document]], write: Callable[[list[Document]], Counter],
                  writers: int) -> Counter:
    """``write`` every batch, up to ``writers`` at once; the sum of the counts it returns.

    Converting a batch to documents holds the GIL while the server stores the previous ones:
    overlapping the two is what the threads are for. The first failed write raises."""
    written = Counter()
    with ThreadPoolExecutor(writers, thread_name_prefix="publish") as pool:
        pending: set[Future] = set()
        for batch in batches:
            if len(pending) >= writers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                written += sum((future.result() for future in done), Counter())
            pending.add(pool.submit(write, batch))
        written += sum((future.result() for future in pending), Counter())
    return written


def _replace_slice(database: Database, table: str, day: date, documents: Iterator[list[Document]],
                   writers: int) -> TableChanges:
    """Delete the day's slice, then insert the staged documents."""
    make_id, slices = SLICED[table]
    replaced = sum(database[table].delete_many(selection).deleted_count for selection in slices(day))

    def with_ids() -> Iterator[list[Document]]:
        for batch in documents:
            for document in batch:
                document["_id"] = make_id(document)
            yield batch

    collection = database[table]
    inserted = write_batches(
        with_ids(), lambda batch: Counter(inserted=len(collection.insert_many(batch, ordered=False).inserted_ids)),
        writers)
    return {"inserted": inserted["inserted"], "replaced": replaced}


DUPLICATE_KEY = 11000
# updates and replaces per bulk request: FerretDB 1.24 on PostgreSQL holds a pooled connection
# for every matching update statement until the request ends, and a request of about 50 (its
# pool's size) waits forever for a connection, hanging the server for every client (measured:
# 100 matching UpdateOne or ReplaceOne in one bulk_write hang it; 20 do not). With
# ``publish_writers`` (3) requests in flight, 10 each keep well below the pool.
UPDATES_PER_REQUEST = 10


def attribute_replace(staged: Document) -> list[ReplaceOne]:
    """A reference dimension's stored document takes the staged attributes, when any differs
    (FerretDB counts a replace by an identical document as a change)."""
    attributes = {name: value for name, value in staged.items() if name != "_id"}
    return [ReplaceOne({"_id": staged["_id"], "$nor": [attributes]}, staged)]


def _insert_or_merge(collection, batch: list[Document], merge: Callable[[Document], list]) -> Counter:
    """Insert the batch; the keys already stored (the inserts' duplicate-key errors) are written
    with ``merge``'s operations by ``_id``. Documents inserted, updated and unchanged.

    Looking the batch's keys up first (``$in``) would scan the whole collection on FerretDB,
    which pushes down only equality filters; so the insert finds the known keys, and each
    update selects its document by ``_id``."""
    try:
        return Counter(inserted=len(collection.insert_many(batch, ordered=False).inserted_ids))
    except BulkWriteError as error:
        errors = error.details["writeErrors"]
        if any(e["code"] != DUPLICATE_KEY for e in errors):
            raise
        known = [batch[e["index"]] for e in errors]
        operations = [op for document in known for op in merge(document)]
        modified = 0
        for start in range(0, len(operations), UPDATES_PER_REQUEST):
            result = collection.bulk_write(operations[start:start + UPDATES_PER_REQUEST], ordered=False)
            modified += result.modified_count + result.upserted_count
        updated = min(modified, len(known))
        return Counter(inserted=error.details["nInserted"], updated=updated, unchanged=len(known) - updated)


def _merge_dimension(database: Database, table: str, documents: Iterator[list[Document]],
                     writers: int) -> TableChanges:
    """A reference dimension: new keys inserted, stored ones replaced when an attribute differs."""
    key = DIMENSION_KEYS[table]
    collection = database[table]

    def write(batch: list[Document]) -> Counter:
        for document in batch:
            document["_id"] = document[key]
        return _insert_or_merge(collection, batch, attribute_replace)

    changes = write_batches(documents, write, writers)
    return {outcome: changes[outcome] for outcome in ("inserted", "updated", "unchanged")}


def _replace_by_key(staged: Document) -> list[ReplaceOne]:
    """A stored document (its insert failed as a duplicate) replaced by the staged one."""
    return [ReplaceOne({"_id": staged["_id"]}, staged)]


def _state_rows(path) -> int:
    return sum(fragment.metadata.num_rows for fragment in ds.dataset(str(path), format="parquet").get_fragments())


def _promote_state(settings: Settings, day: date, table: str) -> None:
    """The day's staged state becomes the published one (hard links: Parquet files are never rewritten)."""
    staged, published = sources.staged_state_path(settings, day, table), sources.published_state_path(settings, table)
    incoming, outgoing = published.with_name(f"{table}.incoming"), published.with_name(f"{table}.outgoing")
    for leftover in (incoming, outgoing):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(staged, incoming, copy_function=os.link)
    if published.exists():
        published.rename(outgoing)
    incoming.rename(published)
    shutil.rmtree(outgoing, ignore_errors=True)


class StaleState(RuntimeError):
    """A dimension's state was staged from another generation than the one MongoDB holds."""


def _publish_stateful(database: Database, settings: Settings, table: str, day: date, size: int,
                      writers: int) -> TableChanges:
    """Write a stateful dimension's changed documents (new ones inserted, the others replaced by
    key), or its whole staged state when MongoDB records no state; record the staged
    generation and promote the state."""
    key = DIMENSION_KEYS[table]
    state = sources.staged_state_path(settings, day, table)
    base, generation = sources.state_generation(state, sources.BASE_FILE), sources.state_generation(state)
    held = database[STATE].find_one({"_id": table})
    held = held["generation"] if held else None
    if held is not None and held != (base or None):
        raise StaleState(f"{day} {table}: staged from state {base or 'none'}, but the warehouse holds {held}; "
                         "re-run the day (its etl and rfm steps) to stage it again")
    whole = held is None and base  # MongoDB lost the state this one builds on: write all of it
    if whole:
        log.warning("%s %s: the warehouse records no state; writing the whole staged state", day, table)
        documents = staged_documents(settings, day, table, size, path=state / "current")
    else:
        documents = staged_documents(settings, day, table, size)
    collection = database[table]

    def write(batch: list[Document]) -> Counter:
        # new documents are inserted; a changed one (or, writing the whole state, any stored
        # one) fails to insert as a duplicate and is replaced by key
        for document in batch:
            document["_id"] = document[key]
            for internal in ("_change", "as_of", "digest"):
                document.pop(internal, None)
        return _insert_or_merge(collection, batch, _replace_by_key)

    changes = write_batches(documents, write, writers)
    database[STATE].replace_one({"_id": table}, {"_id": table, "generation": generation}, upsert=True)
    _promote_state(settings, day, table)
    written = changes["inserted"] + changes["updated"]
    return {"inserted": changes["inserted"], "updated": changes["updated"],
            "unchanged": max(_state_rows(state / "current") - written, 0)}


def publish_day(database: Database, settings: Settings, day: date,
                seconds: dict[str, float] | None = None) -> dict[str, TableChanges]:
    """Copy ``day``'s staged tables into ``database``; table → what its publishing did (and
    into ``seconds``, when given, table → how long it took)."""
    check_audited(settings, day)
    seconds = {} if seconds is None else seconds
    size = settings.warehouse.publish_batch_size
    writers = settings.warehouse.publish_writers
    counts = {}
    # dimensions first: a reader never sees a fact whose dimension row is missing
    for table in (*sources.DIMENSIONS, sources.FACT_SALES, sources.CUSTOMER_RFM, sources.PRODUCT_PERFORMANCE,
                  sources.SALES_TRENDS):
        started = time.monotonic()
        publication = f"{table}:{day.isoformat()}"
        if table in sources.STATEFUL_DIMENSIONS:
            # staged as what changed against the state it was built from: always written (and
            # its state promoted), an unchanged day being an empty change
            counts[table] = _publish_stateful(database, settings, table, day, size, writers)
            seconds[table] = round(time.monotonic() - started, 2)
            log.info("%s %s: %s (%.1f s)", day, table, _described(counts[table]), seconds[table])
            continue
        digest, rows = staged_digest(settings, day, table)
        recorded = database[PUBLICATIONS].find_one({"_id": publication})
        if recorded is not None and recorded["digest"] == digest:
            counts[table] = ({"inserted": 0, "updated": 0, "unchanged": rows} if table in DIMENSION_KEYS
                             else {"inserted": 0, "replaced": 0, "unchanged": rows})
        elif table in DIMENSION_KEYS:
            counts[table] = _merge_dimension(database, table, staged_documents(settings, day, table, size), writers)
        else:
            counts[table] = _replace_slice(database, table, day, staged_documents(settings, day, table, size), writers)
        database[PUBLICATIONS].replace_one({"_id": publication}, {"_id": publication, "digest": digest, "rows": rows},
                                           upsert=True)
        seconds[table] = round(time.monotonic() - started, 2)
        log.info("%s %s: %s (%.1f s)", day, table, _described(counts[table]), seconds[table])
    return counts


def _described(changes: TableChanges) -> str:
    return ", ".join(f"{count} {outcome}" for outcome, count in changes.items())


def passed_gates(settings: Settings, day: date) -> list[dict]:
    """The gates ``day`` passed, as saved: gate, evaluated (expectations), docs_index."""
    results = (sources.load_gate_result(settings, day, gate) for gate in (sources.RAW_DAY_GATE, sources.OUTPUT_GATE))
    return [{name: result[name] for name in ("gate", "evaluated", "docs_index")}
            for result in results if result is not None and result["success"]]


def publish(database: Database, settings: Settings, days: Sequence[date]) -> dict[str, dict]:
    """Publish each day (every one must have passed the output gate first); day → ``tables``
    (table → ``TableChanges``), ``gates`` (``passed_gates``) and ``seconds`` (table → time taken)."""
    for day in days:
        check_audited(settings, day)
    ensure_indexes(database)
    published = {}
    for day in days:
        seconds: dict[str, float] = {}
        tables = publish_day(database, settings, day, seconds)
        published[day.isoformat()] = {"tables": tables, "gates": passed_gates(settings, day), "seconds": seconds}
    return published

