"""Is a streaming app healthy? Decided from the figures its queries leave in PostgreSQL.

The supervising trigger of the ``streaming_pipeline`` DAG reads, for the apps of one process,
each query's ``stream_status`` row (the heartbeat), the committed offsets of its latest batch
(``stream_progress.end_offsets``) and the topics' high-water marks from Kafka, then asks
:func:`assess`. Three problems are told apart:

- **down**: a query has not been heard from within the heartbeat timeout, or has stopped or
  failed. Apps in one process live and die together, so "down" is judged for the whole
  process and its incident is the process's (one email when the JVM hosting five apps dies).
- **stalled**: alive, input waiting in Kafka, yet no batch completed for the stall time.
- **lagging**: alive, but more records than allowed wait behind its committed offsets.

Pure functions: no I/O, so every rule is unit-tested with plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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


@dataclass(frozen=True)
class Limits:
    heartbeat_timeout_seconds: float
    stall_seconds: float
    max_lag_records: int


@dataclass(frozen=True)
class Finding:
    subject: str  # the app, or for DOWN the process hosting it
    problem: Problem
    reason: str
    figures: dict

    @property
    def key(self) -> tuple[str, str]:
        return self.subject, self.problem.value


@dataclass(frozen=True)
class Health:
    app: str
    process: str
    findings: tuple[Finding, ...]

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
) -> Health:
    """The health of ``app``, hosted in one process with the apps of ``group``.

    ``queries`` are those of every app of ``group``; ``limits`` holds each app's thresholds;
    nothing counts as missing before ``supervising_since`` plus the timeout (apps start slowly).
    ``down_since``: when the process's open "down" incident opened (its task saw it die); it
    stays down until every app reports again after that, whatever the timeout.
    """
    queries = list(queries)
    process = process_name(list(group))
    findings = []

    silent = {}  # app → why it is not heard from
    for member in group:
        timeout = limits[member].heartbeat_timeout_seconds
        own = [q for q in queries if q.app == member]
        if not own:
            if down_since is not None or _age(now, supervising_since) > timeout:
                silent[member] = f"no query reported in {timeout:.0f} s"
            continue
        for query in own:
            quiet = _age(now, max(query.last_seen_at, supervising_since))
            if down_since is not None and query.last_seen_at <= down_since:
                silent[member] = f"query {query.query_name} not heard from since its process died at {down_since:%H:%M:%S} UTC"
            elif query.status not in ALIVE_STATUSES and quiet > timeout:
                silent[member] = f"query {query.query_name} is {query.status} since {query.last_seen_at:%H:%M:%S} UTC"
            elif quiet > timeout:
                silent[member] = (f"query {query.query_name} last heard from {_age(now, query.last_seen_at):.0f} s ago "
                                  f"(timeout {timeout:.0f} s)")
    if silent:
        findings.append(Finding(process, Problem.DOWN, "; ".join(f"{a}: {why}" for a, why in sorted(silent.items())),
                                {"apps_down": sorted(silent)}))

    if app not in silent:
        own_limits = limits[app]
        stalled, lagging = {}, {}
        for query in (q for q in queries if q.app == app and q.status in ALIVE_STATUSES):
            behind = lag(query.committed, high_water)
            idle_for = _age(now, max(query.last_batch_at or supervising_since, supervising_since))
            if behind > 0 and idle_for > own_limits.stall_seconds:
                stalled[query.query_name] = (behind, idle_for)
            if behind > own_limits.max_lag_records:
                lagging[query.query_name] = behind
        if stalled:
            reason = "; ".join(f"{name}: {behind:,} records waiting, no batch for {idle:.0f} s"
                               for name, (behind, idle) in sorted(stalled.items()))
            findings.append(Finding(app, Problem.STALLED, reason,
                                    {"stalled_queries": sorted(stalled), "stall_seconds": own_limits.stall_seconds}))
        if lagging:
            reason = "; ".join(f"{name}: {behind:,} records behind (limit {own_limits.max_lag_records:,})"
                               for name, behind in sorted(lagging.items()))
            findings.append(Finding(app, Problem.LAGGING, reason, {"lag": lagging, "max_lag": own_limits.max_lag_records}))
    return Health(app, process, tuple(findings))


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
