"""Is a streaming app healthy? Decided from the figures its queries leave in PostgreSQL.

The supervising trigger of the ``streaming_pipeline`` DAG reads, for the apps of one process,
each query's ``stream_status`` row (the heartbeat), the committed offsets of its latest batch
(``stream_progress.end_offsets``) and the topics' high-water marks from Kafka, then asks
:func:`assess`. Three problems are told apart:

- **down**: a query has not been heard from within the heartbeat timeout, or has stopped or
  failed. A starting query (not heard from since supervision began, or started but with no
  batch or idle report yet) has the longer startup grace instead: warming up is not dying.
  The incident names what is silent: the app when only its queries are, the process (listing
  its apps) when all of them are or it died (one email when the JVM hosting five apps dies).
- **stalled**: alive, yet input has been waiting for the stall time with no batch completed.
  The clock starts when a check first sees that input waiting, not at the last batch, which
  may be long before (after an idle hour, new input is served within seconds). A stall shows
  only across checks, so :func:`assess` takes what the previous check saw and returns what
  this one sees (``Health.waiting_since``).
- **lagging**: alive, but more records than allowed wait behind its committed offsets.

Pure functions: no I/O, so every rule is unit-tested with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from globalmart.settings import Settings
from globalmart.streaming.launch import process_name

ALIVE_STATUSES = ("running", "idle")
# an idle query reports (onQueryIdle) this often: Spark's noDataProgressEventInterval default
IDLE_REPORT_SECONDS = 10.0
# a heartbeat or a batch may be this many triggers apart before it counts as missing
TRIGGERS_OF_GRACE = 3

Offsets = Mapping[str, Mapping[str, int]]  # topic → partition (as text) → offset


class Problem(StrEnum):
    DOWN = "down"
    STALLED = "stalled"
    LAGGING = "lagging"


@dataclass(frozen=True)
class QueryFigures:
    """One streaming query as PostgreSQL last saw it."""

    query_name: str
    app: str
    status: str  # running / idle / stopped / failed (stream_status)
    last_seen_at: datetime
    last_batch_at: datetime | None  # when its latest batch completed; None before the first
    committed: Offsets  # the end offsets of its latest batch, per topic
    # whether its current run reported a batch or idleness (not only "started")
    reported_since_start: bool


@dataclass(frozen=True)
class Limits:
    heartbeat_timeout_seconds: float
    stall_seconds: float
    max_lag_records: int
    startup_grace_seconds: float


@dataclass(frozen=True)
class Finding:
    subject: str  # the app, or for DOWN of all its apps the process hosting them
    problem: Problem
    reason: str
    figures: dict  # always "affected": the apps or queries the problem is about

    @property
    def key(self) -> tuple[str, str]:
        return self.subject, self.problem.value


@dataclass(frozen=True)
class Health:
    app: str
    process: str
    findings: tuple[Finding, ...]
    # the app's queries with input waiting → when a check first saw it (for the next check)
    waiting_since: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.findings

    @property
    def keys(self) -> set[tuple[str, str]]:
        return {finding.key for finding in self.findings}


def app_trigger_seconds(settings: Settings, app: str) -> float:
    """The slowest micro-batch trigger among the app's queries."""
    streaming = settings.streaming
    return {"sessions": streaming.session_trigger_seconds,
            "raw_archiver": streaming.archive_trigger_seconds}.get(app, streaming.trigger_seconds)


def limits_for(settings: Settings, app: str) -> Limits:
    """The supervision thresholds from settings, stretched to cover the app's own trigger."""
    supervision = settings.supervision
    trigger = app_trigger_seconds(settings, app)
    return Limits(
        heartbeat_timeout_seconds=max(supervision.heartbeat_timeout_seconds,
                                      TRIGGERS_OF_GRACE * max(trigger, IDLE_REPORT_SECONDS)),
        stall_seconds=max(supervision.stall_seconds, TRIGGERS_OF_GRACE * trigger),
        max_lag_records=supervision.max_lag_records,
        startup_grace_seconds=max(supervision.startup_grace_seconds, supervision.heartbeat_timeout_seconds,
                                  TRIGGERS_OF_GRACE * max(trigger, IDLE_REPORT_SECONDS)),
    )


def lag(committed: Offsets, high_water: Offsets) -> int:
    """Records written to the query's topics after its committed offsets (partitions it has
    never committed count from 0 only when the query has committed something on that topic)."""
    behind = 0
    for topic, partitions in committed.items():
        for partition, end in high_water.get(topic, {}).items():
            behind += max(0, end - partitions.get(partition, 0))
    return behind


def _age(now: datetime, moment: datetime) -> float:
    return (now - moment).total_seconds()


def assess(
    app: str,
    group: Sequence[str],
    queries: Iterable[QueryFigures],
    high_water: Offsets,
    limits: Mapping[str, Limits],
    supervising_since: datetime,
    now: datetime,
    down_since: datetime | None = None,
    seen_waiting: Mapping[str, datetime] | None = None,
) -> Health:
    """The health of ``app``, hosted in one process with the apps of ``group``.

    ``queries`` are those of every app of ``group``; ``limits`` holds each app's thresholds.
    A query not heard from since ``supervising_since``, or started but with nothing reported
    since, is starting: it has the startup grace, and is not judged stalled.
    ``down_since``: when the process's open "down" incident opened (its task saw it die); it
    stays down until every app reports again after that, whatever the timeout.
    ``seen_waiting``: the previous check's ``Health.waiting_since``.
    """
    queries = list(queries)
    process = process_name(list(group))
    findings = []

    silent: dict[str, dict[str, str]] = {}  # app → its silent queries → why
    starting = set()  # queries still in their startup grace
    for member in group:
        member_limits = limits[member]
        grace = member_limits.startup_grace_seconds
        own = [q for q in queries if q.app == member]
        if not own:
            if down_since is not None:
                silent[member] = {member: f"no query reported since the process went down at {down_since:%H:%M:%S} UTC"}
            elif _age(now, supervising_since) > grace:
                silent[member] = {member: f"no query reported in the {_age(now, supervising_since):.0f} s since "
                                          f"supervision began (startup grace {grace:.0f} s)"}
            continue
        for query in own:
            name = query.query_name
            not_heard_yet = query.last_seen_at < supervising_since
            if not_heard_yet or (query.status == "running" and not query.reported_since_start):
                starting.add(name)
            quiet = _age(now, max(query.last_seen_at, supervising_since))
            if down_since is not None and query.last_seen_at <= down_since:
                why = f"not heard from since the process went down at {down_since:%H:%M:%S} UTC"
            elif name in starting:
                if quiet <= grace:
                    continue
                why = (f"not heard from in the {quiet:.0f} s since supervision began" if not_heard_yet
                       else f"started {quiet:.0f} s ago and has reported no batch yet") + f" (startup grace {grace:.0f} s)"
            elif quiet <= member_limits.heartbeat_timeout_seconds:
                continue
            elif query.status not in ALIVE_STATUSES:
                why = f"{query.status} since {query.last_seen_at:%H:%M:%S} UTC"
            else:
                why = (f"last heard from {_age(now, query.last_seen_at):.0f} s ago "
                       f"(timeout {member_limits.heartbeat_timeout_seconds:.0f} s)")
            silent.setdefault(member, {})[name] = why
    if silent and (down_since is not None or set(silent) == set(group)):  # the process, not one app
        reason = "; ".join(f"{member}: " + ", ".join(f"{name} {why}" if name != member else why
                                                      for name, why in sorted(whys.items()))
                           for member, whys in sorted(silent.items()))
        findings.append(Finding(process, Problem.DOWN, reason, {"affected": sorted(silent)}))
    elif app in silent:
        reason = "; ".join(f"{name} {why}" if name != app else why for name, why in sorted(silent[app].items()))
        findings.append(Finding(app, Problem.DOWN, reason, {"affected": sorted(silent[app])}))

    waiting_since = {}
    if app not in silent:
        own_limits = limits[app]
        stalled, lagging = {}, {}
        for query in (q for q in queries if q.app == app and q.status in ALIVE_STATUSES and q.query_name not in starting):
            behind = lag(query.committed, high_water)
            if behind > 0:
                seen = (seen_waiting or {}).get(query.query_name)
                # a batch completed since input was first seen waiting took it: the clock restarts
                if seen is None or (query.last_batch_at is not None and query.last_batch_at >= seen):
                    seen = now
                waiting_since[query.query_name] = seen
                if _age(now, seen) > own_limits.stall_seconds:
                    stalled[query.query_name] = (behind, _age(now, seen))
            if behind > own_limits.max_lag_records:
                lagging[query.query_name] = behind
        if stalled:
            reason = "; ".join(f"{name}: {behind:,} records waiting for {waiting:.0f} s, no batch"
                               for name, (behind, waiting) in sorted(stalled.items()))
            findings.append(Finding(app, Problem.STALLED, reason,
                                    {"affected": sorted(stalled), "stall_seconds": own_limits.stall_seconds}))
        if lagging:
            reason = "; ".join(f"{name}: {behind:,} records behind (limit {own_limits.max_lag_records:,})"
                               for name, behind in sorted(lagging.items()))
            findings.append(Finding(app, Problem.LAGGING, reason, {"affected": sorted(lagging), "lag": lagging,
                                                                   "max_lag": own_limits.max_lag_records}))
    return Health(app, process, tuple(findings), waiting_since)


def subjects(app: str, group: Sequence[str]) -> list[str]:
    """The incident subjects an app's supervisor looks after: the app and its process."""
    return sorted({app, process_name(list(group))})


def committed_offsets(end_offsets: list | None) -> dict[str, dict[str, int]]:
    """``stream_progress.end_offsets`` (one JSON object per source: topic → partition → offset)
    merged into one mapping."""
    merged: dict[str, dict[str, int]] = {}
    for source in end_offsets or []:
        if isinstance(source, dict):
            for topic, partitions in source.items():
                if isinstance(partitions, dict):
                    merged.setdefault(topic, {}).update({str(p): int(o) for p, o in partitions.items()})
    return merged
