"""The complete-day rule: the archiver has committed past every record the broker received before the cutoff."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from globalmart.warehouse.completeness import (
    PartitionBehind,
    archiver_query,
    assess,
    lake_cutoff,
    render_incomplete,
)
from spark_jobs.streaming.raw_archiver import APP, ARCHIVED_TOPICS

CUTOFF = datetime(2026, 11, 21, 0, 10, tzinfo=UTC)
LATER = CUTOFF + timedelta(hours=2)


def kafka_view(logs: dict[str, list[list[int]]], cutoff_ms: int):
    """What the broker answers about ``logs`` (topic → partition → LogAppendTime timestamps in
    offset order): (offsets_for_times at the cutoff, -1 for none; high-water marks)."""
    first, marks = {}, {}
    for topic, partitions in logs.items():
        for partition, stamps in enumerate(partitions):
            after = [offset for offset, stamp in enumerate(stamps) if stamp >= cutoff_ms]
            first.setdefault(topic, {})[str(partition)] = after[0] if after else -1
            marks.setdefault(topic, {})[str(partition)] = len(stamps)
    return first, marks


# a partition's log: non-decreasing receive times around the cutoff (LogAppendTime), in ms
stamps = st.lists(st.integers(-5_000, 5_000), max_size=12).map(sorted)
logs = st.dictionaries(st.sampled_from(["transactions", "product_views", "cart_events"]),
                       st.lists(stamps, min_size=1, max_size=3), min_size=1)


@given(logs=logs, data=st.data())
def test_complete_exactly_when_every_record_received_before_the_cutoff_is_archived(logs, data):
    cutoff_ms = int(CUTOFF.timestamp() * 1000)
    logs = {topic: [[cutoff_ms + stamp for stamp in partition] for partition in partitions]
            for topic, partitions in logs.items()}
    archived = {topic: {str(p): data.draw(st.none() | st.integers(0, len(stamps)), label=f"{topic}/{p}")
                        for p, stamps in enumerate(partitions)} for topic, partitions in logs.items()}
    archived = {topic: {p: o for p, o in offsets.items() if o is not None} for topic, offsets in archived.items()}
    first, marks = kafka_view(logs, cutoff_ms)

    result = assess(sorted(logs), CUTOFF, LATER, first, marks, archived)

    unarchived_before_cutoff = {
        (topic, str(p)) for topic, partitions in logs.items() for p, stamps in enumerate(partitions)
        if any(stamp < cutoff_ms and offset >= archived[topic].get(str(p), 0) for offset, stamp in enumerate(stamps))
    }
    assert result.complete == (not unarchived_before_cutoff)
    assert {(b.topic, b.partition) for b in result.behind} == unarchived_before_cutoff
    for behind in result.behind:
        assert behind.records == behind.needed - (archived[behind.topic].get(behind.partition) or 0) > 0


@given(logs=logs)
def test_nothing_is_complete_before_the_cutoff(logs):
    first, marks = kafka_view(logs, 0)
    everything = {topic: dict(offsets) for topic, offsets in marks.items()}
    result = assess(sorted(logs), CUTOFF, CUTOFF - timedelta(microseconds=1), first, marks, everything)
    assert result.waiting_for_cutoff and not result.complete
    assert "waiting for 2026-11-21T00:10:00+00:00" in result.summary()


def test_a_partition_quiet_since_the_cutoff_needs_its_high_water_mark():
    first, marks = {"t": {"0": -1}}, {"t": {"0": 40}}
    assert not assess(["t"], CUTOFF, LATER, first, marks, {"t": {"0": 39}}).complete
    assert assess(["t"], CUTOFF, LATER, first, marks, {"t": {"0": 40}}).complete


def test_partitions_never_archived_and_unknown_topics_are_reported():
    result = assess(["t", "gone"], CUTOFF, LATER, {"t": {"0": 7, "1": 0}}, {"t": {"0": 9, "1": 3}}, {})
    assert result.missing_topics == ("gone",)
    assert result.behind == (PartitionBehind("t", "0", None, 7),)  # partition 1 has nothing before the cutoff
    assert result.summary().splitlines() == [
        "the lake is not archived past 2026-11-21T00:10:00+00:00:",
        "- topic gone not found on the broker",
        "- t partition 0: nothing archived, needs 7 (7 records behind)",
    ]


def test_the_cutoff_is_the_end_of_the_last_day_plus_the_grace():
    assert lake_cutoff(date(2026, 11, 20), 600) == CUTOFF


def test_the_archiver_query_names_match_the_archiver():
    assert {archiver_query(key) for key in ARCHIVED_TOPICS} == {f"{APP}.lake_{key}" for key in ARCHIVED_TOPICS}


def test_the_email_names_the_partitions_behind(settings):
    summary = assess(["transactions"], CUTOFF, LATER, {"transactions": {"0": 1_500}}, {"transactions": {"0": 2_000}},
                     {"transactions": {"0": 1_000}}).summary()
    email = render_incomplete(summary, date(2026, 11, 20), 7200, settings)
    assert email.subject == ("[GlobalMart] Daily batch stopped: the lake is incomplete for 2026-11-20 "
                             "after waiting 120 min")
    line = "transactions partition 0: archived up to offset 1,000, needs 1,500 (500 records behind)"
    assert line in email.text and line in email.html
