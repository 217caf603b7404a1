"""Stateful dimensions: the type-2 history rule (properties over random sequences of daily
observations) and the changed documents a day yields."""

from datetime import date, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyspark.sql import types as T

from globalmart.warehouse.dimensions import CUSTOMER, DimensionState, apply_snapshot, documents, scd2_apply

FIRST = date(2026, 11, 1)
HISTORY = T.StructType([T.StructField("customer_key", T.StringType()), T.StructField("rfm_segment", T.StringType()),
                        T.StructField("valid_from", T.DateType()), T.StructField("valid_to", T.DateType())])
SNAPSHOT = "customer_key string, rfm_segment string"
SEGMENTS = st.sampled_from(["Champions", "At Risk", "Lost", None])
# per day (0..9 after FIRST) the customers observed and their segment
# days (offsets after FIRST, each once, in any order: backfills included) and the customers observed
DAYS = st.dictionaries(st.integers(0, 9), st.dictionaries(st.sampled_from(["U1", "U2", "U3"]), SEGMENTS, min_size=1),
                       min_size=1, max_size=4).flatmap(lambda days: st.permutations(sorted(days.items())))
PROPERTY = hypothesis_settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def apply_days(spark, days, history=None, latest=None):
    """History after each day's observations, in order; ``latest``: key → last day observed
    (kept up to date, as the dimension's current rows are)."""
    history = history if history is not None else spark.createDataFrame([], HISTORY)
    latest = latest if latest is not None else {}
    for offset, observed in days:
        day = FIRST + timedelta(days=offset)
        snapshot = spark.createDataFrame(sorted(observed.items()), SNAPSHOT)
        seen = spark.createDataFrame(sorted(latest.items()), "customer_key string, as_of date")
        history = spark.createDataFrame(
            scd2_apply(history, snapshot, day, "customer_key", "rfm_segment", seen).collect(), HISTORY)
        latest.update({key: max(latest.get(key, day), day) for key in observed})
    return history, latest


def versions(history):
    return sorted(history.collect(), key=lambda r: (r.customer_key, r.valid_from))


@PROPERTY
@given(days=DAYS)
def test_history_rows_never_overlap_and_one_is_current_per_key(spark, days):
    rows = versions(apply_days(spark, days)[0])
    by_key = {}
    for row in rows:
        by_key.setdefault(row.customer_key, []).append(row)
    assert set(by_key) == {key for _, observed in days for key in observed}
    for key_rows in by_key.values():
        assert [r.valid_to for r in key_rows[:-1]] == [r.valid_from for r in key_rows[1:]]  # contiguous, no overlap
        assert key_rows[-1].valid_to is None and all(r.valid_to is not None for r in key_rows[:-1])
        # no version repeats the one before it
        assert all(a.rfm_segment != b.rfm_segment for a, b in zip(key_rows, key_rows[1:]))


@PROPERTY
@given(days=DAYS)
def test_re_running_any_day_changes_nothing(spark, days):
    history, latest = apply_days(spark, days)
    for day in days[-2:]:
        assert versions(apply_days(spark, [day], history, dict(latest))[0]) == versions(history)


@PROPERTY
@given(values=st.lists(SEGMENTS, min_size=1, max_size=6))
def test_days_in_order_give_the_runs_of_the_observed_values(spark, values):
    rows = versions(apply_days(spark, [(offset, {"U1": value}) for offset, value in enumerate(values)])[0])
    runs = [(0, values[0])]
    for offset, value in enumerate(values):
        if value != runs[-1][1]:
            runs.append((offset, value))
    assert [(r.rfm_segment, (r.valid_from - FIRST).days) for r in rows] == [(value, start) for start, value in runs]


def test_a_backfilled_day_changes_that_day_only(spark):
    history, latest = apply_days(spark, [(0, {"U1": "Champions"}), (5, {"U1": "Lost"})])
    backfilled, _ = apply_days(spark, [(2, {"U1": "At Risk"})], history, latest)
    day = [FIRST + timedelta(days=offset) for offset in range(6)]
    assert [(r.rfm_segment, r.valid_from, r.valid_to) for r in versions(backfilled)] == [
        ("Champions", day[0], day[2]), ("At Risk", day[2], day[3]), ("Champions", day[3], day[5]), ("Lost", day[5], None)]
    # a day before the first observation holds until it
    earlier, _ = apply_days(spark, [(0, {"U2": "Lost"})], *apply_days(spark, [(3, {"U2": "At Risk"})]))
    assert [(r.rfm_segment, r.valid_from, r.valid_to) for r in versions(earlier)] == [
        ("Lost", day[0], day[3]), ("At Risk", day[3], None)]


CUSTOMER_SNAPSHOT = "customer_key string, name string, country string, lifetime_orders int, rfm_segment string, as_of date"


def test_a_day_yields_only_the_documents_that_changed(spark):
    day1, day2 = FIRST, FIRST + timedelta(days=1)
    empty_history = spark.createDataFrame([], HISTORY)
    first = spark.createDataFrame([("U1", "Ann", "UK", 1, "New Customers", day1), ("U2", "Bo", "USA", 1, "Lost", day1)],
                                  CUSTOMER_SNAPSHOT)
    empty = DimensionState(documents(first.limit(0), empty_history, CUSTOMER), empty_history)
    state, changed = apply_snapshot(empty, first, day1, CUSTOMER)
    assert sorted((r.customer_key, r._change) for r in changed.collect()) == [("U1", "inserted"), ("U2", "inserted")]
    state = DimensionState(spark.createDataFrame(state.current.collect(), state.current.schema),
                           spark.createDataFrame(state.history.collect(), state.history.schema))

    # day 2: U1 bought again and moved segment, U2 is observed unchanged, U3 is new
    second = spark.createDataFrame([("U1", "Ann", "UK", 2, "Champions", day2), ("U2", "Bo", "USA", 1, "Lost", day2),
                                    ("U3", "Cy", "France", 1, "Lost", day2)], CUSTOMER_SNAPSHOT)
    new_state, changed = apply_snapshot(state, second, day2, CUSTOMER)
    rows = {r.customer_key: r for r in changed.collect()}
    assert {key: r._change for key, r in rows.items()} == {"U1": "updated", "U3": "inserted"}
    assert [(v.rfm_segment, v.valid_from, v.valid_to) for v in rows["U1"].segment_history] == [
        ("New Customers", day1, day2), ("Champions", day2, None)]
    assert (rows["U1"].segment_since, rows["U1"].lifetime_orders, rows["U3"].segment_since) == (day2, 2, day2)
    assert new_state.current.count() == 3

    # the same day again: nothing changes
    again = DimensionState(spark.createDataFrame(new_state.current.collect(), new_state.current.schema),
                           spark.createDataFrame(new_state.history.collect(), new_state.history.schema))
    assert apply_snapshot(again, second, day2, CUSTOMER)[1].count() == 0
    # an older day loaded late changes no current attribute, only the history it adds to
    late = spark.createDataFrame([("U2", "Bo", "UK", 1, "Lost", day1)], CUSTOMER_SNAPSHOT)
    assert apply_snapshot(again, late, day1, CUSTOMER)[1].count() == 0
