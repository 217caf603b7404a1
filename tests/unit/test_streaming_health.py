"""The health decisions of the streaming supervisor, from plain figures."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from globalmart.settings import Settings
from globalmart.streaming.launch import APPS
from globalmart.streaming.health import (
    Health,
    Limits,
    Problem,
    QueryFigures,
    app_trigger_seconds,
    assess,
    committed_offsets,
    lag,
    limits_for,
    subjects,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=1)
LIMITS = Limits(heartbeat_timeout_seconds=60, stall_seconds=120, max_lag_records=1000, startup_grace_seconds=300)
GROUP = ("sales_metrics", "anomaly_detector")


def query(app="sales_metrics", part="windows", status="running", seen=5, batch=5, committed=None, reported=True):
    return QueryFigures(
        query_name=f"{app}.{part}", app=app, status=status, last_seen_at=NOW - timedelta(seconds=seen),
        last_batch_at=None if batch is None else NOW - timedelta(seconds=batch),
        committed=committed if committed is not None else {"transactions": {"0": 100, "1": 100}},
        reported_since_start=reported,
    )


def check(queries, high_water=None, app="sales_metrics", group=GROUP, since=SINCE, seen_waiting=None):
    return assess(app, group, queries, high_water or {"transactions": {"0": 100, "1": 100}},
                  {member: LIMITS for member in group}, since, NOW, seen_waiting=seen_waiting)


def healthy_group():
    return [query(), query(app="anomaly_detector", part="rules")]


def test_fresh_heartbeats_and_no_backlog_are_healthy():
    health = check(healthy_group())
    assert health.healthy and health.keys == set()


def test_silence_of_every_app_past_the_timeout_is_down_for_the_whole_process():
    queries = [query(seen=61), query(app="anomaly_detector", part="rules", seen=70)]
    health = check(queries)
    assert health.keys == {("marts", "down")}
    # the other app of the same process sees the same incident, so it is emailed once
    assert check(queries, app="anomaly_detector").keys == {("marts", "down")}
    assert "sales_metrics.windows last heard from 61 s ago" in health.findings[0].reason
    assert health.findings[0].figures == {"affected": ["anomaly_detector", "sales_metrics"]}


def test_one_silent_query_is_down_for_its_app_alone_and_named():
    queries = [query(seen=61), query(part="totals"), query(app="anomaly_detector", part="rules")]
    health = check(queries)
    assert health.keys == {("sales_metrics", "down")}  # not "marts": the process is alive
    assert health.findings[0].figures == {"affected": ["sales_metrics.windows"]}
    assert health.findings[0].reason == "sales_metrics.windows last heard from 61 s ago (timeout 60 s)"
    assert check(queries, app="anomaly_detector").healthy  # the other app's supervisor has nothing to say


def test_silence_within_the_timeout_is_not_yet_down():
    assert check([query(seen=59), query(app="anomaly_detector", part="rules", seen=59)]).healthy


def test_a_stopped_or_failed_query_is_down_once_the_timeout_passed():
    failed = [query(status="failed", seen=61), query(app="anomaly_detector", part="rules")]
    assert check(failed).keys == {("sales_metrics", "down")}
    just_stopped = [query(status="stopped", seen=10), query(app="anomaly_detector", part="rules")]
    assert check(just_stopped).healthy  # a restart in progress: it has the timeout to come back


def test_a_process_seen_dying_stays_down_until_every_app_reports_again():
    died = NOW - timedelta(seconds=8)
    before_death = [query(seen=10), query(app="anomaly_detector", part="rules", seen=10)]
    health = assess("sales_metrics", GROUP, before_death, {}, {m: LIMITS for m in GROUP}, SINCE, NOW, down_since=died)
    assert health.keys == {("marts", "down")}  # well within the heartbeat timeout, yet down
    half_back = [query(seen=1), query(app="anomaly_detector", part="rules", seen=10)]
    assert assess("sales_metrics", GROUP, half_back, {}, {m: LIMITS for m in GROUP}, SINCE, NOW,
                  down_since=died).findings[0].figures == {"affected": ["anomaly_detector"]}
    back = [query(seen=1), query(app="anomaly_detector", part="rules", seen=2)]
    assert assess("sales_metrics", GROUP, back, {}, {m: LIMITS for m in GROUP}, SINCE, NOW, down_since=died).healthy


def test_apps_not_heard_from_since_supervision_began_have_the_startup_grace():
    old = [query(seen=3600, status="stopped"), query(app="anomaly_detector", part="rules", seen=3600)]
    assert check(old, since=NOW - timedelta(seconds=121)).healthy  # twice the heartbeat timeout: still starting
    health = check(old, since=NOW - timedelta(seconds=301))
    assert health.keys == {("marts", "down")}
    assert "not heard from in the 301 s since supervision began (startup grace 300 s)" in health.findings[0].reason


def test_an_app_that_never_reported_is_down_after_the_startup_grace():
    only_sales = [query()]
    assert check(only_sales, since=NOW - timedelta(seconds=299)).healthy
    assert check(only_sales, since=NOW - timedelta(seconds=301)).healthy  # sales_metrics itself reports
    health = check(only_sales, app="anomaly_detector", since=NOW - timedelta(seconds=301))
    assert health.keys == {("anomaly_detector", "down")}
    assert health.findings[0].reason == "no query reported in the 301 s since supervision began (startup grace 300 s)"
    assert health.findings[0].figures == {"affected": ["anomaly_detector"]}


def test_a_started_query_warming_up_has_the_startup_grace_until_its_first_report():
    # started (its start report 121 s ago), first batch not done: the 121 s of the first start
    warming = [query(seen=121, batch=None, reported=False), query(app="anomaly_detector", part="rules")]
    assert check(warming, since=NOW - timedelta(seconds=200)).healthy
    health = check([replace(warming[0], last_seen_at=NOW - timedelta(seconds=301)), warming[1]])
    assert health.keys == {("sales_metrics", "down")}
    assert "started 301 s ago and has reported no batch yet (startup grace 300 s)" in health.findings[0].reason
    # once it reported a batch or idleness, the heartbeat timeout applies again
    assert check([replace(warming[0], reported_since_start=True), warming[1]]).keys == {("sales_metrics", "down")}


def test_a_starting_query_with_input_waiting_is_not_stalled():
    backlog = {"transactions": {"0": 5000, "1": 100}}
    warming = [query(seen=200, batch=4000, reported=False), query(app="anomaly_detector", part="rules")]
    health = check(warming, backlog, seen_waiting={"sales_metrics.windows": NOW - timedelta(seconds=500)})
    assert health.healthy and health.waiting_since == {}


def test_a_single_app_process_is_its_own_subject():
    health = assess("sessions", ("sessions",), [query(app="sessions", seen=61)], {}, {"sessions": LIMITS}, SINCE, NOW)
    assert health.findings[0].figures == {"affected": ["sessions"]}
    assert health.keys == {("sessions", "down")}
    assert subjects("sessions", ("sessions",)) == ["sessions"]
    assert subjects("sessions", GROUP + ("sessions",)) == ["all_apps", "sessions"]


def test_input_seen_waiting_without_a_batch_for_the_stall_time_is_stalled():
    backlog = {"transactions": {"0": 150, "1": 100}}
    reporting_idle = [query(status="idle", seen=3, batch=500), query(app="anomaly_detector", part="rules")]
    first_seen = NOW - timedelta(seconds=121)
    health = check(reporting_idle, backlog, seen_waiting={"sales_metrics.windows": first_seen})
    assert health.keys == {("sales_metrics", "stalled")}
    assert health.findings[0].reason == "sales_metrics.windows: 50 records waiting for 121 s, no batch"
    assert health.findings[0].figures["affected"] == ["sales_metrics.windows"]
    assert health.waiting_since == {"sales_metrics.windows": first_seen}
    assert check(reporting_idle, backlog, seen_waiting={"sales_metrics.windows": NOW - timedelta(seconds=119)}).healthy


def test_input_arriving_after_a_long_idle_period_is_not_a_stall():
    backlog = {"transactions": {"0": 150, "1": 100}}
    idle_for_19_minutes = [query(status="idle", seen=4, batch=19 * 60), query(app="anomaly_detector", part="rules")]
    health = check(idle_for_19_minutes, backlog)
    assert health.healthy  # the clock starts now, when input is first seen waiting
    assert health.waiting_since == {"sales_metrics.windows": NOW}


def test_a_batch_after_input_was_seen_waiting_restarts_the_clock():
    backlog = {"transactions": {"0": 150, "1": 100}}
    served = [query(batch=30), query(app="anomaly_detector", part="rules")]  # steady traffic: always some waiting
    health = check(served, backlog, seen_waiting={"sales_metrics.windows": NOW - timedelta(seconds=400)})
    assert health.healthy and health.waiting_since == {"sales_metrics.windows": NOW}
    assert check(served, seen_waiting={"sales_metrics.windows": NOW - timedelta(seconds=400)}).waiting_since == {}


def test_no_input_waiting_is_not_a_stall_however_old_the_last_batch():
    assert check([query(batch=3000), query(app="anomaly_detector", part="rules")]).healthy


def test_more_records_behind_than_allowed_is_lagging():
    behind = {"transactions": {"0": 700, "1": 601}}  # 600 + 501 = 1101 > 1000
    health = check([query(batch=1), query(app="anomaly_detector", part="rules")], behind)
    assert health.keys == {("sales_metrics", "lagging")}
    assert health.findings[0].figures["lag"] == {"sales_metrics.windows": 1101}
    assert health.findings[0].figures["affected"] == ["sales_metrics.windows"]
    assert check([query(batch=1), query(app="anomaly_detector", part="rules")],
                 {"transactions": {"0": 600, "1": 600}}).healthy  # exactly 1000 behind


def test_a_down_app_is_not_also_judged_stalled_or_lagging():
    behind = {"transactions": {"0": 5000, "1": 5000}}
    health = check([query(seen=61, batch=500), query(app="anomaly_detector", part="rules")], behind,
                   seen_waiting={"sales_metrics.windows": NOW - timedelta(seconds=500)})
    assert health.keys == {("sales_metrics", "down")}


def test_another_apps_backlog_is_not_this_apps_problem():
    queries = [query(), query(app="anomaly_detector", part="rules", batch=500, committed={"transactions": {"0": 0}})]
    seen_waiting = {"anomaly_detector.rules": NOW - timedelta(seconds=400)}  # after its last batch
    assert check(queries, seen_waiting=seen_waiting).healthy
    assert check(queries, app="anomaly_detector", seen_waiting=seen_waiting).keys == {("anomaly_detector", "stalled")}


def test_lag_counts_new_partitions_of_a_known_topic_and_ignores_unknown_topics():
    assert lag({"t": {"0": 10}}, {"t": {"0": 15, "1": 4}, "other": {"0": 99}}) == 9
    assert lag({"t": {"0": 20}}, {"t": {"0": 15}}) == 0  # high-water mark read before the batch committed


def test_committed_offsets_merge_every_source_of_a_query():
    end_offsets = [{"transactions": {"0": 5, "1": 7}}, {"inventory": {"0": 2}}, None]
    assert committed_offsets(end_offsets) == {"transactions": {"0": 5, "1": 7}, "inventory": {"0": 2}}
    assert committed_offsets(None) == {}


@pytest.mark.parametrize(("app", "heartbeat", "stall", "grace"), [
    ("sales_metrics", 120, 300, 600),  # the settings' thresholds
    ("raw_archiver", 180, 300, 600),  # a 60 s trigger: three triggers without a heartbeat
    ("sessions", 120, 300, 600),
])
def test_limits_stretch_to_cover_slow_triggers(app, heartbeat, stall, grace):
    limits = limits_for(Settings(), app)
    assert (limits.heartbeat_timeout_seconds, limits.stall_seconds, limits.startup_grace_seconds) == (heartbeat, stall, grace)


def test_limits_follow_the_settings():
    settings = Settings(supervision={"heartbeat_timeout_seconds": 30, "stall_seconds": 45, "max_lag_records": 7,
                                     "startup_grace_seconds": 90})
    assert limits_for(settings, "sales_metrics") == Limits(30, 45, 7, 90)
    # a startup grace shorter than the heartbeat timeout would make starting stricter than running
    assert limits_for(Settings(supervision={"startup_grace_seconds": 10}), "sales_metrics").startup_grace_seconds == 120
    assert Problem("down") is Problem.DOWN


# -- a replay: the first start, 19 minutes without traffic, then traffic ---------------------

START_DURATION = 60  # JVM and SparkSession before the first query reports
IDLE_MINUTES = 19
TRAFFIC_AT = 1400  # seconds after supervision began
HORIZON = TRAFFIC_AT + 600
RECORDS_PER_SECOND = 20
BACKLOG_END = 1000  # the high-water mark while nothing is sent; the previous run committed 500


def high_water(t: float) -> int:
    return BACKLOG_END + RECORDS_PER_SECOND * max(0, int(t - TRAFFIC_AT))


def reports(trigger: float, first_batch: float, started: float) -> list[tuple[float, str, int]]:
    """One query's reports to stream_status / stream_progress: (when, kind, committed offset).
    Its first batch (the backlog, cold) takes ``first_batch`` s, so does the first after idleness."""
    out = [(started, "start", 500)]
    t, committed, cold = started + first_batch, high_water(started), False
    out.append((t, "batch", committed))
    last_report = t
    while t < HORIZON:
        t += trigger
        if high_water(t) > committed:
            committed = high_water(t)
            t += first_batch / 3 if cold else 2  # the first batch after idleness is slow too
            cold = False
            out.append((t, "batch", committed))
            last_report = t
        elif t - last_report >= 10:  # Spark's onQueryIdle interval
            out.append((t, "idle", committed))
            last_report, cold = t, True
    return out


def figures_at(name: str, app: str, timeline, t: float, since: datetime) -> QueryFigures:
    at = lambda seconds: since + timedelta(seconds=seconds)  # noqa: E731
    done = [r for r in timeline if r[0] <= t]
    if not done:  # the row the previous run left
        return QueryFigures(name, app, "stopped", at(-3600), at(-3600), {app: {"0": 500}}, True)
    when, kind, committed = done[-1]
    batches = [r for r in done if r[1] == "batch"]
    return QueryFigures(name, app, "idle" if kind == "idle" else "running", at(when),
                        at(batches[-1][0]) if batches else at(-3600), {app: {"0": committed}}, kind != "start")


def replay(judge) -> list[str]:
    """Every incident email the supervisors of the five apps of one process send over the
    scenario, checking every 10 s; ``judge(app, queries, high_water, since, now, down_since, memory)``
    returns the finding keys and the memory for the app's next check."""
    settings = Settings()
    since = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    names = {app: [f"{app}.main"] + ([f"{app}.totals"] if app == "sales_metrics" else []) for app in APPS}
    # cold first batches: 60 s, the inventory tracker's 125 s (then 20 s and 42 s after idleness)
    timelines = {name: reports(app_trigger_seconds(settings, app), 125 if app == "inventory_tracker" else 60,
                               START_DURATION + 3 * i)
                 for i, (app, name) in enumerate((app, name) for app in APPS for name in names[app])}
    open_incidents: dict[tuple[str, str], datetime] = {}
    memory = {app: {} for app in APPS}
    emails = []
    for t in range(10, HORIZON, 10):
        now = since + timedelta(seconds=t)
        queries = [figures_at(name, app, timelines[name], t, since) for app in APPS for name in names[app]]
        marks = {app: {"0": high_water(t)} for app in APPS}
        for app in APPS:
            mine = {key for key in open_incidents if key[0] in subjects(app, APPS)}
            keys, memory[app] = judge(app, queries, marks, since, now, open_incidents.get(("marts", "down")),
                                      memory[app])
            for key in sorted(keys - mine):
                open_incidents[key] = now
                emails.append(f"t={t}s {key[0]} {key[1]}")
            for key in sorted(mine - keys):
                del open_incidents[key]
                emails.append(f"t={t}s resolved {key[0]} {key[1]}")
    return emails


def test_a_first_start_19_idle_minutes_and_new_traffic_send_no_email():
    limits = {app: limits_for(Settings(), app) for app in APPS}

    def judge(app, queries, marks, since, now, down_since, seen_waiting) -> tuple[set, dict]:
        health: Health = assess(app, APPS, queries, marks, limits, since, now, down_since, seen_waiting)
        return health.keys, health.waiting_since

    assert replay(judge) == []
