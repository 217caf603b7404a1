"""Publish: copy a day's audited staging area into the MongoDB warehouse, idempotently.

Only a day whose output gate passed after its tables were staged is published (the gate's
saved result is checked here too, not only by the DAG's order). Per table:

- facts and day-keyed tables (``fact_sales`` by ``date_key``, ``customer_rfm`` by
  ``analysis_date``, ``product_performance`` by ``date``, ``sales_trends`` by granularity and
  period start) replace the day's slice: delete it, insert the staged documents;
- dimensions merge by key: new keys are inserted, a stored document is replaced only when
  merging changes it (``dim_customer`` keeps the earliest ``first_seen``, the latest
  ``last_seen`` and that latest transaction's country, so the order days are loaded in does
  not matter); the rest take the staged attributes.

Every document has a deterministic ``_id``, so loading a day twice leaves the same data.
Each table reports what it did (``TableChanges``): a dimension its documents inserted, updated
and unchanged; a day-keyed table the documents inserted and how many of the day's previous
ones they replaced. A day also reports the gates it passed, for the summary email.

Written with pymongo bulk writes (``insert_many`` unordered, batches of
``warehouse.publish_batch_size``, ``warehouse.publish_writers`` in flight while the next batch
is converted): the staged Parquet is read with pyarrow without a Spark session, and on
FerretDB a bulk insert is ~30× faster than upserts document by document.
FerretDB 1.x has no Decimal128, so money is stored as doubles rounded to the cent; dates are
stored as UTC midnights.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date, datetime, time as clock, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
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
    "dim_customer": [[("country", ASCENDING)]],
    "dim_product": [[("category", ASCENDING)]],
}


def _mongo_ready(table: pa.Table) -> pa.Table:
    """Arrow types MongoDB stores: decimals → doubles, dates → UTC midnights, timestamps → ms (naive UTC)."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_decimal(field.type):
            column = pc.round(pc.cast(column, pa.float64()), 2)
        elif pa.types.is_date(field.type):
            column = pc.cast(pc.cast(column, pa.date64()), pa.timestamp("ms"))
        elif pa.types.is_timestamp(field.type):
            column = pc.cast(column, pa.timestamp("ms", tz=field.type.tz), safe=False).cast(pa.timestamp("ms"))
        columns.append(column)
    return pa.table(columns, names=table.schema.names)


def staged_documents(settings: Settings, day: date, table: str, batch_size: int) -> Iterator[list[Document]]:
    """The staged rows of ``table`` as MongoDB documents, ``batch_size`` at a time."""
    dataset = ds.dataset(str(sources.staged_path(settings, day, table)), format="parquet")
    for batch in dataset.to_batches(batch_size=batch_size):
        if batch.num_rows:
            yield _mongo_ready(pa.Table.from_batches([batch])).to_pylist()


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


def customer_merge(staged: Document) -> list[UpdateOne]:
    """Merging a staged customer into its stored document, as conditional updates: the earliest
    ``first_seen``; the latest ``last_seen`` with that transaction's country. Days merge to the
    same document whatever order they are loaded in, and loading a day again changes nothing."""
    key = staged["_id"]
    return [
        UpdateOne({"_id": key, "first_seen": {"$gt": staged["first_seen"]}}, {"$set": {"first_seen": staged["first_seen"]}}),
        UpdateOne({"_id": key, "last_seen": {"$lt": staged["last_seen"]}},
                  {"$set": {"last_seen": staged["last_seen"], "country": staged["country"]}}),
    ]


def attribute_replace(staged: Document) -> list[ReplaceOne]:
    """A reference dimension's stored document takes the staged attributes, when any differs
    (FerretDB counts a replace by an identical document as a change)."""
    attributes = {name: value for name, value in staged.items() if name != "_id"}
    return [ReplaceOne({"_id": staged["_id"], "$nor": [attributes]}, staged)]


def _merge_dimension(database: Database, table: str, documents: Iterator[list[Document]],
                     writers: int) -> TableChanges:
    """Insert the batch; the keys already stored (the inserts' duplicate-key errors) are merged
    with updates by ``_id``. Documents inserted, updated (changed by the merge) and unchanged.

    Looking the batch's keys up first (``$in``) would scan the whole collection on FerretDB,
    which pushes down only equality filters; so the insert finds the known keys, and each
    update selects its document by ``_id``."""
    key = DIMENSION_KEYS[table]
    merge = customer_merge if table == "dim_customer" else attribute_replace
    collection = database[table]

    def write(batch: list[Document]) -> Counter:
        for document in batch:
            document["_id"] = document[key]
        try:
            return Counter(inserted=len(collection.insert_many(batch, ordered=False).inserted_ids))
        except BulkWriteError as error:
            errors = error.details["writeErrors"]
            if any(e["code"] != DUPLICATE_KEY for e in errors):
                raise
            known = [batch[e["index"]] for e in errors]
            updates = collection.bulk_write([op for document in known for op in merge(document)], ordered=False)
            # a customer whose first and last seen both move is modified by two updates: counted once
            updated = min(updates.modified_count, len(known))
            return Counter(inserted=error.details["nInserted"], updated=updated, unchanged=len(known) - updated)

    changes = write_batches(documents, write, writers)
    return {outcome: changes[outcome] for outcome in ("inserted", "updated", "unchanged")}


def publish_day(database: Database, settings: Settings, day: date) -> dict[str, TableChanges]:
    """Copy ``day``'s staged tables into ``database``; table → what its publishing did."""
    check_audited(settings, day)
    size = settings.warehouse.publish_batch_size
    counts = {}
    # dimensions first: a reader never sees a fact whose dimension row is missing
    for table in (*sources.DIMENSIONS, sources.FACT_SALES, sources.CUSTOMER_RFM, sources.PRODUCT_PERFORMANCE,
                  sources.SALES_TRENDS):
        started = time.monotonic()
        documents = staged_documents(settings, day, table, size)
        writers = settings.warehouse.publish_writers
        if table in DIMENSION_KEYS:
            counts[table] = _merge_dimension(database, table, documents, writers)
        else:
            counts[table] = _replace_slice(database, table, day, documents, writers)
        changes = ", ".join(f"{count} {outcome}" for outcome, count in counts[table].items())
        log.info("%s %s: %s (%.1f s)", day, table, changes, time.monotonic() - started)
    return counts


def passed_gates(settings: Settings, day: date) -> list[dict]:
    """The gates ``day`` passed, as saved: gate, evaluated (expectations), docs_index."""
    results = (sources.load_gate_result(settings, day, gate) for gate in (sources.RAW_DAY_GATE, sources.OUTPUT_GATE))
    return [{name: result[name] for name in ("gate", "evaluated", "docs_index")}
            for result in results if result is not None and result["success"]]


def publish(database: Database, settings: Settings, days: Sequence[date]) -> dict[str, dict]:
    """Publish each day (every one must have passed the output gate first); day → ``tables``
    (table → ``TableChanges``) and ``gates`` (``passed_gates``)."""
    for day in days:
        check_audited(settings, day)
    ensure_indexes(database)
    return {day.isoformat(): {"tables": publish_day(database, settings, day), "gates": passed_gates(settings, day)}
            for day in days}

