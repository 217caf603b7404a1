"""Descriptive dimensions kept as state: the current row per key, type-2 history of the
attributes analysts ask "what was it then" about, and the documents that changed.

``dim_customer`` (a customer's ``rfm_segment``) and ``dim_product`` (a product's ``list_price``)
are built each day from a *snapshot*: the keys observed that day with their attributes as of
that day (``as_of``). The batch keeps their state beside the staging area
(``<warehouse_dir>/dimensions/<table>/``, promoted by the publish step once MongoDB holds it):

- ``current``: one row per key, the attributes of its latest snapshot (a day loaded out of
  order never overrides a later one), and ``digest``, a hash of the published document;
- ``history``: the tracked attribute's versions, ``valid_from`` (inclusive) to ``valid_to``
  (exclusive, null for the open version).

History rule (:func:`scd2_apply`). A version starts on a day its value was observed to differ
from the day before's version; the value holds until the next version starts. Observing a value
on day d records a version starting on d (replacing one that already started on d); when the
key was already observed after d, also one starting on d + 1 with the value the history gave
that day (unless a version starts then); then it drops every version whose value equals the
version before it. So:

- re-running a day changes nothing (the same version is recorded again, then found redundant
  or equal);
- versions of a key never overlap, and exactly one (the last) is open;
- days applied in order give the run-length encoding of the observed values;
- a day loaded after later days of its key (a backfill) changes that day only: from the day
  after, the key keeps the value its history gave (it was observed then); a day before a key's
  first observation holds until its first version.

Published documents embed the history (``segment_history`` / ``price_history``: value,
valid_from, valid_to), so "what was it then" is one lookup by key and a day that changes
nothing writes nothing. Only keys of the day's snapshot can change, so only they are rebuilt
into documents; :func:`apply_snapshot` returns the new state and the documents whose digest
differs from the published one (with ``_change``: inserted or updated).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

VALID_FROM, VALID_TO, AS_OF, DIGEST, CHANGE = "valid_from", "valid_to", "as_of", "digest", "_change"


@dataclass(frozen=True)
class Tracked:
    """A dimension with type-2 history: its key, the tracked attribute, the array of versions
    its documents embed and the name of the open version's start in the current row."""

    table: str
    key: str
    attribute: str
    history_field: str
    since_field: str


CUSTOMER = Tracked("dim_customer", "customer_key", "rfm_segment", "segment_history", "segment_since")
PRODUCT = Tracked("dim_product", "product_key", "list_price", "price_history", "price_since")
TRACKED = {spec.table: spec for spec in (CUSTOMER, PRODUCT)}


def scd2_apply(history: DataFrame, snapshot: DataFrame, day: date, key: str, attribute: str,
               latest: DataFrame | None = None) -> DataFrame:
    """``history`` (key, attribute, valid_from, valid_to) with ``snapshot``'s value of each of
    its keys (key, attribute; one row per key) observed on ``day``: the new history, every key
    (see the module docstring for the rule). ``latest`` (key, as_of): the last day each key was
    observed before; a key observed after ``day`` keeps, from the day after, the value its
    history gave that day."""
    next_day = day + timedelta(days=1)
    observed = snapshot.select(key, attribute, F.lit(day).alias(VALID_FROM))
    points = history.select(key, attribute, VALID_FROM)
    starts = points.join(observed.select(key, VALID_FROM), [key, VALID_FROM], "left_anti").unionByName(observed)
    if latest is not None:
        later = latest.where(F.col(AS_OF) > F.lit(day)).select(key).join(snapshot.select(key), key, "left_semi")
        before_next = points.where(F.col(VALID_FROM) <= F.lit(next_day)).join(later, key, "left_semi")
        restored = (before_next.groupBy(key).agg(F.max_by(attribute, VALID_FROM).alias(attribute),
                                                 F.max(VALID_FROM).alias("_last"))
                    .where(F.col("_last") < F.lit(next_day))  # a version starting the day after stays
                    .select(key, attribute, F.lit(next_day).alias(VALID_FROM)))
        starts = starts.unionByName(restored)
    by_start = Window.partitionBy(key).orderBy(VALID_FROM)
    value = F.struct(F.col(attribute).alias("value"))
    repeats = F.coalesce(F.lag(value).over(by_start).eqNullSafe(value), F.lit(False))
    kept = starts.withColumn("_repeats", repeats).where(~F.col("_repeats")).drop("_repeats")
    return kept.select(key, attribute, VALID_FROM, F.lead(VALID_FROM).over(by_start).alias(VALID_TO))


def latest_rows(current: DataFrame, snapshot: DataFrame, key: str) -> DataFrame:
    """Per key, the row of the later ``as_of`` between the stored ``current`` and the
    ``snapshot`` (the snapshot's on a tie), with the snapshot's columns."""
    columns = snapshot.columns
    both = (current.select(*columns).withColumn("_rank", F.lit(1))
            .unionByName(snapshot.withColumn("_rank", F.lit(0))))
    newest = Window.partitionBy(key).orderBy(F.col(AS_OF).desc(), "_rank")
    return both.withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n", "_rank")


def documents(rows: DataFrame, history: DataFrame, spec: Tracked) -> DataFrame:
    """Current ``rows`` with their open version's start (``since_field``), their versions
    embedded (``history_field``, oldest first) and a ``digest`` of the whole document."""
    versions = history.groupBy(spec.key).agg(
        F.sort_array(F.collect_list(F.struct(VALID_FROM, spec.attribute, VALID_TO))).alias("_versions"))
    ordered = F.transform("_versions", lambda v: F.struct(v[spec.attribute].alias(spec.attribute),
                                                          v[VALID_FROM].alias(VALID_FROM), v[VALID_TO].alias(VALID_TO)))
    open_version = F.filter(spec.history_field, lambda v: v[VALID_TO].isNull())
    built = (rows.drop(spec.since_field, spec.history_field, DIGEST).join(versions, spec.key, "left")
             .withColumn(spec.history_field, ordered).drop("_versions")
             .withColumn(spec.since_field, F.element_at(open_version, 1)[VALID_FROM]))
    fields = [name for name in built.columns if name != AS_OF]  # as_of alone changes nothing published
    return built.withColumn(DIGEST, F.xxhash64(*fields))


@dataclass
class DimensionState:
    current: DataFrame  # one row per key: the document's fields, as_of, digest
    history: DataFrame  # key, attribute, valid_from, valid_to


def apply_snapshot(state: DimensionState, snapshot: DataFrame, day: date, spec: Tracked) -> tuple[DimensionState, DataFrame]:
    """The day's ``snapshot`` (one row per key: the document's attributes, ``as_of`` = ``day``)
    applied to ``state``: the new state, and the documents that differ from the published ones
    (their fields without ``as_of`` and ``digest``, plus ``_change``: inserted or updated)."""
    history = scd2_apply(state.history, snapshot, day, spec.key, spec.attribute,
                         state.current.select(spec.key, AS_OF))
    keys = snapshot.select(spec.key)
    touched_history = history.join(keys, spec.key, "left_semi")
    rows = latest_rows(state.current.join(keys, spec.key, "left_semi"), snapshot, spec.key)
    touched = documents(rows, touched_history, spec)
    published = state.current.select(spec.key, F.col(DIGEST).alias("_published"))
    compared = touched.join(published, spec.key, "left")
    changed = (compared.where(F.col("_published").isNull() | (F.col("_published") != F.col(DIGEST)))
               .withColumn(CHANGE, F.when(F.col("_published").isNull(), "inserted").otherwise("updated"))
               .drop("_published", DIGEST, AS_OF))
    current = state.current.join(keys, spec.key, "left_anti").unionByName(touched.select(*state.current.columns))
    return DimensionState(current, history), changed
