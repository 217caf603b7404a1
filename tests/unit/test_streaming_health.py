"""The health decisions of the streaming supervisor, from plain figures."""

from datetime import UTC, datetime, timedelta

import pytest

from globalmart.settings import Settings
from globalmart.streaming.health import (
    Limits,
    Problem,
    QueryFigures,
    assess,
    committed_offsets,
    lag,
    limits_for,
    subjects,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=1)
LIMITS = Limits(heartbeat_timeout_seconds=60, stall_seconds=120, max_lag_records=1000)
GROUP = ("sales_metrics", "anomaly_detector")


def query(app="sales_metrics", part="windows", status="running", seen=5, batch=5, committed=None):
    return QueryFigures(
        query_name=f"{app}.{part}", app=app, status=status, last_seen_at=NOW - timedelta(seconds=seen),
        last_batch_at=None if batch is None else NOW - timedelta(seconds=batch),
        committed=committed if committed is not None else {"transactions": {"0": 100, "1": 100}},
    )


def check(queries, high_water=None, app="sales_metrics", group=GROUP, since=SINCE):
    return assess(app, group, queries, high_water or {"transactions": {"0": 100, "1": 100}},
                  {member: LIMITS for member in group}, since, NOW)


def healthy_group():
    return [query(), query(app="anomaly_detector", part="rules")]


def test_fresh_heartbeats_and_no_backlog_are_healthy():
    health = check(healthy_group())
    assert health.healthy and health.keys == set()


def test_silence_past_the_timeout_is_down_for_the_whole_process():
    queries = [query(seen=61), query(app="anomaly_detector", part="rules")]
    health = check(queries)
    assert health.keys == {("all_apps", "down")}
    # the other app of the same process sees the same incident, so it is emailed once
    assert check(queries, app="anomaly_detector").keys == {("all_apps", "down")}
    assert "sales_metrics.windows last heard from 61 s ago" in health.findings[0].reason


def test_silence_within_the_timeout_is_not_yet_down():
    assert check([query(seen=59), query(app="anomaly_detector", part="rules", seen=59)]).healthy


def test_a_stopped_or_failed_query_is_down_once_the_timeout_passed():
    failed = [query(status="failed", seen=61), query(app="anomaly_detector", part="rules")]
    assert check(failed).keys == {("all_apps", "down")}
    just_stopped = [query(status="stopped", seen=10), query(app="anomaly_detector", part="rules")]
    assert check(just_stopped).healthy  # a restart in progress: it has the timeout to come back


def test_a_process_seen_dying_stays_down_until_every_app_reports_again():
    died = NOW - timedelta(seconds=8)
    before_death = [query(seen=10), query(app="anomaly_detector", part="rules", seen=10)]
    health = assess("sales_metrics", GROUP, before_death, {}, {m: LIMITS for m in GROUP}, SINCE, NOW, down_since=died)
    assert health.keys == {("all_apps", "down")}  # well within the heartbeat timeout, yet down
    half_back = [query(seen=1), query(app="anomaly_detector", part="rules", seen=10)]
    assert assess("sales_metrics", GROUP, half_back, {}, {m: LIMITS for m in GROUP}, SINCE, NOW,
                  down_since=died).findings[0].figures == {"apps_down": ["anomaly_detector"]}
    back = [query(seen=1), query(app="anomaly_detector", part="rules", seen=2)]
    assert assess("sales_metrics", GROUP, back, {}, {m: LIMITS for m in GROUP}, SINCE, NOW, down_since=died).healthy


def test_nothing_is_missing_before_supervision_began_plus_the_timeout():
    old = [query(seen=3600, status="stopped"), query(app="anomaly_detector", part="rules", seen=3600)]
    assert check(old, since=NOW - timedelta(seconds=30)).healthy
    assert check(old, since=NOW - timedelta(seconds=61)).keys == {("all_apps", "down")}


def test_an_app_that_never_reported_is_down_after_the_timeout():
    only_sales = [query()]
    assert check(only_sales, since=NOW - timedelta(seconds=30)).healthy
    health = check(only_sales, since=NOW - timedelta(seconds=61))
    assert health.keys == {("all_apps", "down")}
    assert health.findings[0].figures == {"apps_down": ["anomaly_detector"]}


def test_a_single_app_process_is_its_own_subject():
    health = assess("sessions", ("sessions",), [query(app="sessions", seen=61)], {}, {"sessions": LIMITS}, SINCE, NOW)
    assert health.keys == {("sessions", "down")}
    assert subjects("sessions", ("sessions",)) == ["sessions"]
    assert subjects("sessions", GROUP + ("sessions",)) == ["all_apps", "sessions"]


def test_input_waiting_without_a_batch_for_the_stall_time_is_stalled():
    backlog = {"transactions": {"0": 150, "1": 100}}
    stalled = [query(batch=121), query(app="anomaly_detector", part="rules")]
    health = check(stalled, backlog)
    assert health.keys == {("sales_metrics", "stalled")}
    assert "50 records waiting" in health.findings[0].reason
    assert check([query(batch=119), query(app="anomaly_detector", part="rules")], backlog).healthy


def test_no_input_waiting_is_not_a_stall_however_old_the_last_batch():
    assert check([query(batch=3000), query(app="anomaly_detector", part="rules")]).healthy


def test_a_query_without_any_batch_counts_from_supervision_start():
    backlog = {"transactions": {"0": 150, "1": 100}}
    fresh = [query(batch=None), query(app="anomaly_detector", part="rules")]
    assert check(fresh, backlog, since=NOW - timedelta(seconds=60)).healthy
    assert check(fresh, backlog, since=NOW - timedelta(seconds=121)).keys == {("sales_metrics", "stalled")}


def test_more_records_behind_than_allowed_is_lagging():
    behind = {"transactions": {"0": 700, "1": 601}}  # 600 + 501 = 1101 > 1000
    health = check([query(batch=1), query(app="anomaly_detector", part="rules")], behind)
    assert health.keys == {("sales_metrics", "lagging")}
    assert health.findings[0].figures["lag"] == {"sales_metrics.windows": 1101}
    assert check([query(batch=1), query(app="anomaly_detector", part="rules")],
                 {"transactions": {"0": 600, "1": 600}}).healthy  # exactly 1000 behind


def test_a_down_app_is_not_also_judged_stalled_or_lagging():
    behind = {"transactions": {"0": 5000, "1": 5000}}
    health = check([query(seen=61, batch=500), query(app="anomaly_detector", part="rules")], behind)
    assert health.keys == {("all_apps", "down")}


def test_another_apps_backlog_is_not_this_apps_problem():
    queries = [query(), query(app="anomaly_detector", part="rules", batch=500, committed={"transactions": {"0": 0}})]
    assert check(queries).healthy
    assert check(queries, app="anomaly_detector").keys == {("anomaly_detector", "stalled")}


def test_lag_counts_new_partitions_of_a_known_topic_and_ignores_unknown_topics():
    assert lag({"t": {"0": 10}}, {"t": {"0": 15, "1": 4}, "other": {"0": 99}}) == 9
    assert lag({"t": {"0": 20}}, {"t": {"0": 15}}) == 0  # high-water mark read before the batch committed


def test_committed_offsets_merge_every_source_of_a_query():
    end_offsets = [{"transactions": {"0": 5, "1": 7}}, {"inventory": {"0": 2}}, None]
    assert committed_offsets(end_offsets) == {"transactions": {"0": 5, "1": 7}, "inventory": {"0": 2}}
    assert committed_offsets(None) == {}


@pytest.mark.parametrize(("app", "heartbeat", "stall"), [
    ("sales_metrics", 120, 300),  # the settings' thresholds
    ("raw_archiver", 180, 300),  # a 60 s trigger: three triggers without a heartbeat
    ("sessions", 120, 300),
])
def test_limits_stretch_to_cover_slow_triggers(app, heartbeat, stall):
    limits = limits_for(Settings(), app)
    assert (limits.heartbeat_timeout_seconds, limits.stall_seconds) == (heartbeat, stall)


def test_limits_follow_the_settings():
    settings = Settings(supervision={"heartbeat_timeout_seconds": 30, "stall_seconds": 45, "max_lag_records": 7})
    assert limits_for(settings, "sales_metrics") == Limits(30, 45, 7)
    assert Problem("down") is Problem.DOWN
