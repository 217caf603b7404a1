"""Start the streaming apps as spark-submit processes (benchmarks, quality runs, tests).

Each app runs in its own process group so that it can be stopped (SIGTERM) or killed
(SIGKILL) whole: spark-submit, the driver JVM and its Python workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from globalmart.settings import Settings, env_overrides
from globalmart.spark import submit_command, submit_environment

APPS = ("sales_metrics", "anomaly_detector", "inventory_tracker", "sessions", "raw_archiver")


def app_command(settings: Settings, app: str, checkpoint_dir: Path, available_now: bool = False) -> list[str]:
    if app not in APPS:
        raise ValueError(f"unknown streaming app {app!r}; one of {', '.join(APPS)}")
    args = ["--checkpoint-dir", str(checkpoint_dir / app)] + (["--available-now"] if available_now else [])
    return submit_command(settings, f"streaming/{app}.py", args)


def start_app(settings: Settings, app: str, checkpoint_dir: Path, log_dir: Path, available_now: bool = False) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{app}.log", "ab")  # noqa: SIM115 - the child process owns it
    return subprocess.Popen(
        app_command(settings, app, checkpoint_dir, available_now),
        env={**os.environ, **submit_environment(settings), **env_overrides(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _python_drivers(pid: int) -> list[int]:
    """The Python processes spark-submit (``pid``) started: the app's driver."""
    drivers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and "python" in (stat.parent / "comm").read_text():
                drivers.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return drivers


def stop_app(process: subprocess.Popen, kill: bool = False, timeout: float = 60) -> int:
    """Stop an app: gracefully by default (SIGTERM to the Python driver, which stops its queries
    between batches and exits; spark-submit then exits 0), or SIGKILL its whole process group."""
    if process.poll() is None:
        drivers = [] if kill else _python_drivers(process.pid)
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
