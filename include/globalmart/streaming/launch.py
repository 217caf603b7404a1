"""Start the streaming apps as spark-submit processes (benchmarks, quality runs, tests, the CLI).

A process hosts one app (``spark_jobs/streaming/<app>.py``) or several in one Spark
application (``spark_jobs/streaming/all_apps.py``). With ``settings.streaming.one_application``
(the local default) the apps share two applications (``APPLICATIONS``): the marts, whose
batches every half second carry the freshest figures and the fraud alerts, and the bulk work
(sessions' 30 s and the lake's 60 s batches), which would otherwise hold the task slots for
seconds while a mart batch waits (the FAIR scheduler does not preempt), and which runs at a
lower CPU priority (``runner.lower_priority``). Otherwise each app has its own application, as
on a cluster. Each process runs in its own process group so that it can be stopped (SIGTERM)
or killed (SIGKILL) whole: spark-submit, the driver JVM and its Python workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from globalmart.settings import Settings, env_overrides
from globalmart.spark import submit_command, submit_environment

MARTS = ("sales_metrics", "anomaly_detector", "inventory_tracker")
BULK = ("sessions", "raw_archiver")
APPS = MARTS + BULK
APPLICATIONS = {"marts": MARTS, "bulk": BULK}
ALL_APPS = "all_apps"


def process_name(apps: Sequence[str]) -> str:
    """The name of the process hosting ``apps``: the app's own, its application's, or ``all_apps``."""
    if len(apps) == 1:
        return apps[0]
    return next((name for name, members in APPLICATIONS.items() if set(apps) <= set(members)), ALL_APPS)


def groups(settings: Settings, apps: Sequence[str] = APPS) -> list[tuple[str, ...]]:
    """The apps each process hosts: as ``APPLICATIONS`` groups them, or one each."""
    if not settings.streaming.one_application:
        return [(app,) for app in apps]
    hosted = [tuple(app for app in members if app in apps) for members in APPLICATIONS.values()]
    return [group for group in hosted if group]


def is_bulk(apps: Sequence[str]) -> bool:
    """Whether a process hosts bulk work only, to run at a lower CPU priority than the marts."""
    return bool(apps) and set(apps) <= set(BULK)


def entry_point(apps: Sequence[str], checkpoint_root: Path, available_now: bool = False) -> tuple[str, list[str]]:
    """(the spark-submit application under ``spark_jobs/``, its arguments) of a process hosting ``apps``."""
    unknown = [app for app in apps if app not in APPS]
    if unknown or not apps:
        raise ValueError(f"unknown streaming apps {unknown}; choose from {', '.join(APPS)}")
    args = ["--checkpoint-root", str(checkpoint_root)] + (["--available-now"] if available_now else [])
    if len(apps) == 1:
        return f"streaming/{apps[0]}.py", args
    return f"streaming/{ALL_APPS}.py", ["--apps", ",".join(apps), *args]


def app_command(settings: Settings, apps: Sequence[str], checkpoint_root: Path, available_now: bool = False) -> list[str]:
    return submit_command(settings, *entry_point(apps, checkpoint_root, available_now))


def group_of(settings: Settings, app: str) -> tuple[str, ...]:
    """The apps hosted in one process with ``app`` (itself included)."""
    return next(group for group in groups(settings) if app in group)


def start_apps(settings: Settings, apps: Sequence[str], checkpoint_root: Path, log_dir: Path,
               available_now: bool = False) -> subprocess.Popen:
    """One spark-submit process hosting ``apps``; its output goes to ``<log_dir>/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{process_name(apps)}.log", "ab")  # noqa: SIM115 - the child process owns it
    return subprocess.Popen(
        app_command(settings, apps, checkpoint_root, available_now),
        env={**os.environ, **submit_environment(settings), **env_overrides(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_all(settings: Settings, checkpoint_root: Path, log_dir: Path, apps: Sequence[str] = APPS,
              available_now: bool = False) -> dict[str, subprocess.Popen]:
    """Every app, grouped into processes as the settings say: process name → process."""
    return {process_name(group): start_apps(settings, group, checkpoint_root, log_dir, available_now)
            for group in groups(settings, apps)}


def python_drivers(pid: int) -> list[int]:
    """The Python processes spark-submit (``pid``) started as the app's driver (not the pool of
    Python workers, ``pyspark.daemon``, that the JVM also starts: a signal there fails a batch)."""
    drivers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if (int(fields[1]) == pid and "python" in (stat.parent / "comm").read_text()
                    and b"pyspark.daemon" not in (stat.parent / "cmdline").read_bytes()):
                drivers.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return drivers


def stop_app(process: subprocess.Popen, kill: bool = False, timeout: float = 60) -> int:
    """Stop an app: gracefully by default (SIGTERM to the Python driver, which stops its queries
    between batches and exits; spark-submit then exits 0), or SIGKILL its whole process group."""
    if process.poll() is None:
        drivers = [] if kill else python_drivers(process.pid)
        try:
            if drivers:
                for pid in drivers:
                    os.kill(pid, signal.SIGTERM)
            else:
                os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout)


def app_of(query_name: str) -> str:
    """Query names are ``<app>.<part>``."""
    return query_name.split(".", 1)[0]


def trigger_of(settings: Settings, app: str) -> float:
    """Seconds between an app's micro-batches."""
    streaming = settings.streaming
    return {"sessions": streaming.session_trigger_seconds,
            "raw_archiver": streaming.archive_trigger_seconds}.get(app, streaming.trigger_seconds)
