"""Is the lake complete up to a day's end? The rule the daily batch waits on before its raw gate.

The lake is written by the raw archiver: one Spark file-sink query per topic
(``raw_archiver.lake_<topic key>``), whose committed end offsets (per partition: the next record
it will read) its progress listener records in ``stream_progress``. Every topic stamps its
records with the time the broker received them (``message.timestamp.type=LogAppendTime``), so
within a partition timestamps never go down with the offset.

The rule: the lake holds every day up to ``cutoff`` = the end of the last day + the grace
(``warehouse.completeness_grace_seconds``) when, for every partition of every topic the batch
reads, the archiver has committed past

- the offset of the first record the broker received at or after ``cutoff`` (Kafka's
  ``offsets_for_times``): every record before it was received before ``cutoff``;
- or, when the partition has received nothing since ``cutoff``, its high-water mark: all of it.

It is only judged once ``cutoff`` has passed: before then, a partition's high-water mark is not
yet the day's end. An event of the day the broker receives after ``cutoff`` (a producer offline
for longer than the grace, a backfill through Kafka) is not waited for: it reaches the lake
later, and re-running the day picks it up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape

from globalmart.alerting.rendering import RenderedEmail
from globalmart.settings import Settings

Offsets = Mapping[str, Mapping[str, int]]  # topic → partition (as text) → offset

# the lake datasets the daily batch reads (topic keys of ``settings.kafka``)
BATCH_LAKE_TOPICS = ("transactions", "product_views", "cart_events")
ARCHIVER_APP = "raw_archiver"


def archiver_query(topic_key: str) -> str:
    """The raw archiver's file-sink query of a topic (``spark_jobs/streaming/raw_archiver.py``)."""
    return f"{ARCHIVER_APP}.lake_{topic_key}"


def lake_cutoff(last_day: date, grace_seconds: float) -> datetime:
    """The moment the lake must be archived up to for ``last_day`` (UTC) to be whole."""
    return datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC) + timedelta(seconds=grace_seconds)


@dataclass(frozen=True)
class PartitionBehind:
    topic: str
    partition: str
    archived: int | None  # the archiver's committed end offset; None: it never archived the partition
    needed: int  # the end offset the archiver must reach

    @property
    def records(self) -> int:
        """Records still to archive (an upper bound when the archiver never read the partition)."""
        return self.needed - (self.archived or 0)

    def describe(self) -> str:
        archived = "nothing archived" if self.archived is None else f"archived up to offset {self.archived:,}"
        records = f"{self.records:,} record{'' if self.records == 1 else 's'} behind"
        return f"{self.topic} partition {self.partition}: {archived}, needs {self.needed:,} ({records})"


@dataclass(frozen=True)
class Completeness:
    cutoff: datetime
    waiting_for_cutoff: bool  # ``cutoff`` has not passed yet: nothing can be judged
    missing_topics: tuple[str, ...]  # topics the broker does not know
    behind: tuple[PartitionBehind, ...]

    @property
    def complete(self) -> bool:
        return not (self.waiting_for_cutoff or self.missing_topics or self.behind)

    def summary(self) -> str:
        if self.waiting_for_cutoff:
            return f"waiting for {self.cutoff.isoformat()} (the day's end + grace) before judging the lake"
        if self.complete:
            return f"the lake is archived past {self.cutoff.isoformat()} on every partition"
        lines = [f"the lake is not archived past {self.cutoff.isoformat()}:"]
        lines += [f"- topic {topic} not found on the broker" for topic in self.missing_topics]
        lines += [f"- {behind.describe()}" for behind in self.behind]
        return "\n".join(lines)


def assess(topics: Sequence[str], cutoff: datetime, now: datetime, first_after_cutoff: Offsets,
           high_water: Offsets, archived: Offsets) -> Completeness:
    """Whether the archiver has committed past ``cutoff`` on every partition of ``topics``.

    ``first_after_cutoff``: the offset of the first record received at or after ``cutoff``
    (absent, or negative as Kafka answers, when there is none); ``high_water``: every partition
    of each topic, from the broker; ``archived``: the archiver's committed end offsets.
    """
    if now < cutoff:
        return Completeness(cutoff, True, (), ())
    behind = []
    for topic in topics:
        for partition, mark in sorted(high_water.get(topic, {}).items(), key=lambda item: int(item[0])):
            first = first_after_cutoff.get(topic, {}).get(partition, -1)
            needed = first if first >= 0 else mark
            done = archived.get(topic, {}).get(partition)
            # a partition never written (needed 0) needs no archiving
            if needed > 0 and (done is None or done < needed):
                behind.append(PartitionBehind(topic, partition, done, needed))
    missing = tuple(topic for topic in topics if topic not in high_water)
    return Completeness(cutoff, False, missing, tuple(behind))


def render_incomplete(summary: str, last_day: date, waited_seconds: float, settings: Settings) -> RenderedEmail:
    """The email of a daily batch that gave up waiting for the lake (``summary``: the last
    ``Completeness.summary()``, or why the lake could not be checked)."""
    subject = (f"{settings.alerting.subject_prefix} Daily batch stopped: the lake is incomplete for {last_day} "
               f"after waiting {waited_seconds / 60:.0f} min")
    advice = ("Check the raw archiver (streaming app raw_archiver) in the streaming_pipeline DAG, then re-run the "
              "daily_batch DAG for this day. Nothing was published: the warehouse is unchanged.")
    lines = summary.splitlines()
    text = "\n".join([f"Daily batch stopped: the lake is incomplete for {last_day}", "", *lines, "", advice]) + "\n"
    items = "".join(f"<li><code>{escape(line.removeprefix('- '))}</code></li>" for line in lines[1:])
    html = (f'<html><body style="font-family: sans-serif"><h2 style="color: #b42318">Daily batch stopped: '
            f"the lake is incomplete for {last_day}</h2><p>{escape(lines[0])}</p>"
            + (f"<ul>{items}</ul>" if items else "") + f"<p>{escape(advice)}</p></body></html>")
    return RenderedEmail(subject=subject, html=html, text=text)
