"""Benchmark: resident memory of the running local platform, per service (run by hand).

PSS (proportional set size) splits shared pages between the processes that share them, so
the PSS column adds up to what the platform really costs; RSS counts shared pages in every
process (forked Airflow workers, PostgreSQL's shared buffers) and overstates the total.
"""

from __future__ import annotations

from pathlib import Path

from globalmart.platform.supervisor import Supervisor
from globalmart.settings import load_settings


def _tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [pid] + [p for kid in kids for p in _tree(kid)]


def _kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def main() -> None:
    supervisor = Supervisor(load_settings())
    if not supervisor.is_running():
        raise SystemExit("platform is not running: start it with `make run`")
    print(f"{'service':<24}{'procs':>6}{'RSS MiB':>10}{'PSS MiB':>10}")
    total_rss = total_pss = 0
    for name, info in sorted(supervisor.processes().items()):
        pids = _tree(info["pid"]) if info["pid"] else []
        rss = sum(_kib(p, "Rss") for p in pids) / 1024
        pss = sum(_kib(p, "Pss") for p in pids) / 1024
        total_rss, total_pss = total_rss + rss, total_pss + pss
        print(f"{name:<24}{len(pids):>6}{rss:>10.0f}{pss:>10.0f}")
    print(f"{'total':<24}{'':>6}{total_rss:>10.0f}{total_pss:>10.0f}")


if __name__ == "__main__":
    main()
