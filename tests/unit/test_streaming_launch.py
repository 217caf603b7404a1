"""How the streaming apps are grouped into spark-submit processes."""

from pathlib import Path

import pytest

from globalmart.streaming.launch import ALL_APPS, APPS, BULK, MARTS, app_command, groups, is_bulk, process_name


def with_one_application(settings, value: bool):
    return settings.model_copy(update={"streaming": settings.streaming.model_copy(update={"one_application": value})})


def test_the_marts_and_the_bulk_work_run_in_two_applications_or_each_app_in_its_own(settings):
    assert groups(with_one_application(settings, True)) == [MARTS, BULK]
    assert [process_name(group) for group in groups(with_one_application(settings, True))] == ["marts", "bulk"]
    assert groups(with_one_application(settings, True), ["sales_metrics", "raw_archiver"]) == [("sales_metrics",), ("raw_archiver",)]
    assert groups(with_one_application(settings, False)) == [(app,) for app in APPS]
    assert process_name(["sales_metrics", "anomaly_detector"]) == "marts" and process_name(APPS) == ALL_APPS
    assert is_bulk(BULK) and is_bulk(["sessions"]) and not is_bulk(["sessions", "sales_metrics"]) and not is_bulk([])


def test_a_process_of_several_apps_runs_all_apps_with_their_names(settings):
    command = app_command(settings, ["sales_metrics", "sessions"], Path("/cp"), available_now=True)
    script = command.index(next(arg for arg in command if arg.endswith(f"streaming/{ALL_APPS}.py")))
    assert command[script + 1:] == ["--apps", "sales_metrics,sessions", "--checkpoint-root", "/cp", "--available-now"]
    # the streaming conf goes with it: FAIR pools between the apps, the streaming driver memory
    assert "spark.scheduler.mode=FAIR" in command
    assert command[command.index("--driver-memory") + 1] == settings.streaming.driver_memory


def test_a_process_of_one_app_runs_that_app(settings):
    command = app_command(settings, ["inventory_tracker"], Path("/cp"))
    assert command[-3:] == [command[-3], "--checkpoint-root", "/cp"]
    assert command[-3].endswith("streaming/inventory_tracker.py")


def test_unknown_apps_are_refused_by_name(settings):
    with pytest.raises(ValueError, match="'nope'"):
        app_command(settings, ["sales_metrics", "nope"], Path("/cp"))


def test_a_driver_not_started_by_spark_submit_leaves_its_callers_priority_alone():
    import os

    from globalmart.streaming.runner import lower_priority

    before = os.getpriority(os.PRIO_PGRP, os.getpgrp())
    assert lower_priority(5) is False
    assert os.getpriority(os.PRIO_PGRP, os.getpgrp()) == before
