"""Isolating the records that make a micro-batch fail, restarting a failed query, and where a query
that replaces another starts: rules without services."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from globalmart.streaming.isolation import isolate
from globalmart.streaming.runner import restart_delay


def poisoned_by(bad: set[int], calls: list):
    def trial(first: int, end: int) -> str | None:
        calls.append((first, end))
        hit = sorted(bad & set(range(first, end)))
        return f"record {hit[0]} is poison" if hit else None

    return trial


@settings(max_examples=300, deadline=None)
@given(data=st.data(), count=st.integers(1, 5000))
def test_every_poisoned_record_is_isolated_and_no_more_when_the_budget_allows(data, count):
    bad = set(data.draw(st.lists(st.integers(0, count - 1), max_size=4)))
    if not bad:
        bad = {data.draw(st.integers(0, count - 1))}
    calls = []
    budget = 2 * len(bad) * (math.ceil(math.log2(count)) + 1)
    found = isolate(count, "the batch failed", poisoned_by(bad, calls), max_trials=budget)
    assert set(found.records) == bad
    assert found.trials == len(calls) <= budget
    for record in bad:  # the reason of the trial that pinned it down (a batch of one: the batch's)
        assert found.reason_of(record) == (f"record {record} is poison" if count > 1 else "the batch failed")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), count=st.integers(1, 5000), budget=st.integers(2, 12))
def test_a_small_budget_sets_aside_more_but_never_lets_a_poisoned_record_through(data, count, budget):
    bad = set(data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=6)))
    calls = []
    found = isolate(count, "the batch failed", poisoned_by(bad, calls), max_trials=budget)
    assert bad <= set(found.records)
    assert len(calls) <= budget
    assert len(found.records) == len(set(found.records))  # no record set aside twice


def test_records_that_fail_only_together_are_set_aside_together():
    def trial(first: int, end: int) -> str | None:
        return "duplicate key" if {3, 12} <= set(range(first, end)) else None

    found = isolate(16, "duplicate key", trial, max_trials=64)
    assert found.records == list(range(16))  # the two halves each pass: the failing set is the whole batch
    assert found.isolated[0].reason == "duplicate key"


def test_a_failed_query_waits_longer_each_time():
    assert [restart_delay(n, 10.0) for n in range(4)] == [10.0, 20.0, 40.0, 80.0]


def test_a_replacing_query_starts_after_the_last_batch_its_predecessor_committed(tmp_path):
    from globalmart.streaming.runner import resume_offsets

    old, new = tmp_path / "lake_transactions", tmp_path / "lake_transactions_distinct"
    (old / "commits").mkdir(parents=True)
    (old / "offsets").mkdir()
    for batch, offsets in ((0, '{"transactions":{"0":10}}'), (1, '{"transactions":{"0":25,"1":7}}'),
                           (2, '{"transactions":{"0":40,"1":9}}')):
        (old / "offsets" / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0}}\n{offsets}\n')
    for batch in (0, 1):  # batch 2 was planned, never committed: it is read again
        (old / "commits" / str(batch)).write_text("v1\n{}\n")
    assert resume_offsets(str(old), str(new)) == '{"transactions":{"0":25,"1":7}}'
    new.mkdir()  # once the new checkpoint exists it knows its own offsets
    assert resume_offsets(str(old), str(new)) is None
    assert resume_offsets(str(tmp_path / "never"), str(tmp_path / "fresh")) is None
