"""Benchmark of the read side (run by hand; prints figures): the read API's latency and
throughput at a fixed request rate, the dashboards' page render time, both services' memory.

Marts holding a day of 1-minute windows (every category × country each minute: ~727,000 rows,
with their hourly rollups and each minute's best products) are seeded into a sandbox database;
an API server of its own (the platform's uvicorn command, on a free loopback port) reads them.

- API: ``monitoring/dashboard`` and ``sales/metrics`` in turn, each at ``--rate`` requests/s for
  ``--seconds`` (open loop: a request leaves at its planned time whether or not the earlier ones
  have answered; latency counts from that planned time, so a server falling behind shows in
  p99 instead of slowing the sender). Throughput: answers per second over the run; requests
  still unsent ``DRAIN_SECONDS`` after the last planned one are counted, not sent.
- Dashboards: each page's script run by Streamlit's AppTest against the same marts (the time
  the server takes to build the page a browser then draws), median of ``--renders`` runs.
- Memory: RSS of the benchmark API server idle and after the load, and of the live platform's
  api and dashboards services (as ``make run`` left them).

    .venv/bin/python scripts/bench_read_api.py --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
from collections import Counter
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from globalmart.generator.categories import CATEGORIES  # noqa: E402
from globalmart.platform.services import service_by_name  # noqa: E402
from globalmart.platform.supervisor import Supervisor  # noqa: E402
from globalmart.settings import ENV_PREFIX, env_overrides, load_settings  # noqa: E402
from globalmart.streaming.sandbox import sandbox  # noqa: E402
from tests.readmodel_fixtures import private_warehouse, seed_day_of_windows, seed_marts, seed_warehouse  # noqa: E402

ROUTES = {
    "dashboard summary": "/api/v1/monitoring/dashboard",
    "sales metrics": "/api/v1/sales/metrics",
}
DRAIN_SECONDS = 10  # after the planned sends: requests still queued then are counted as unsent
PAGES = ["live_sales", "anomalies", "inventory", "funnel", "customers", "products", "platform_health"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    """RSS of a process and its children (a service may fork workers)."""
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


async def load(port: int, path: str, key: str, rate: int, seconds: float, connections: int = 64) -> dict:
    """Requests at ``rate`` per second for ``seconds`` over ``connections`` keep-alive connections;
    latencies from each request's planned send time. A bare HTTP/1.1 client: a pooled client
    library spends more CPU per request than the server on this small machine."""
    total = int(rate * seconds)
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n\r\n").encode()
    planned_times: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    failures: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not planned_times.empty() and time.perf_counter() < give_up:
                planned = planned_times.get_nowait()
                await asyncio.sleep(max(0.0, planned - time.perf_counter()))
                try:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    await reader.readexactly(length)
                except (ConnectionError, asyncio.IncompleteReadError) as error:
                    # the server closed the connection (its keep-alive timeout, or it failed): a new one
                    failures.append(type(error).__name__)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - planned)
                else:
                    failures.append(str(status))
        finally:
            writer.close()

    started = time.perf_counter()
    give_up = started + seconds + DRAIN_SECONDS
    for i in range(total):
        planned_times.put_nowait(started + i / rate)
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "failures": Counter(failures), "requests": total, "ok": len(latencies), "failed": len(failures), "unsent": planned_times.qsize(),
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def render_times(env: dict[str, str], renders: int) -> dict[str, float]:
    """Median seconds of each page's script under AppTest, reading the sandbox through the env."""
    from streamlit.testing.v1 import AppTest

    os.environ.update(env)
    sys.path.insert(0, str(PROJECT_ROOT / "dashboards"))
    times = {}
    for page in PAGES:
        samples = []
        for _ in range(renders):
            started = time.perf_counter()
            app = AppTest.from_file(str(PROJECT_ROOT / "dashboards" / "views" / f"{page}.py"), default_timeout=60).run()
            samples.append(time.perf_counter() - started)
            if app.exception:
                raise SystemExit(f"page {page} failed: {[error.value for error in app.exception]}")
        times[page] = statistics.median(samples)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="requests per second per route")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per route")
    parser.add_argument("--renders", type=int, default=3, help="runs of each dashboard page")
    parser.add_argument("--cache-seconds", type=float, default=None,
                        help="the API's answer cache (default: GLOBALMART_API__CACHE_SECONDS; 0: every request reads)")
    parser.add_argument("--workers", type=int, default=None, help="uvicorn workers (default: GLOBALMART_API__WORKERS)")
    args = parser.parse_args()

    settings = load_settings()
    key = settings.api.key.get_secret_value()
    with sandbox(settings, "bench_read_api") as (marts_env, _folder), private_warehouse(marts_env) as env:
        seeding = time.perf_counter()
        seed_marts(env)
        rows = seed_day_of_windows(env, settings.catalog.countries, [category.full_name for category in CATEGORIES])
        print(f"seeded {rows:,} 1-minute window rows ({len(settings.catalog.countries)} countries × "
              f"{len(CATEGORIES)} categories + country totals, 1440 minutes) in {time.perf_counter() - seeding:.0f} s")

        port = free_port()
        chosen = {"cache_seconds": args.cache_seconds, "workers": args.workers}
        api = env.api.model_copy(update={"port": port, **{k: v for k, v in chosen.items() if v is not None}})
        child_env = {**os.environ, **env_overrides(env), f"{ENV_PREFIX}API__PORT": str(port),
                     f"{ENV_PREFIX}API__CACHE_SECONDS": str(api.cache_seconds), f"{ENV_PREFIX}API__WORKERS": str(api.workers)}
        command = service_by_name(env.model_copy(update={"api": api}), "api").command
        server_log = open(_folder / "api.log", "wb")  # noqa: SIM115 (open while the server runs)
        server = subprocess.Popen(command, env=child_env, cwd=PROJECT_ROOT, stdout=server_log, stderr=server_log)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            else:
                raise SystemExit("the benchmark API server did not start")
            for path in ROUTES.values():  # first reads: connections opened, plans cached
                httpx.get(base + path, headers={"X-API-Key": key}, timeout=30).raise_for_status()
            idle_rss = rss_mib(server.pid)
            print(f"\nAPI at {args.rate} requests/s for {args.seconds:.0f} s per route (loopback, {api.workers} uvicorn "
                  f"worker(s), answer cache {api.cache_seconds:g} s, {os.cpu_count()} cores shared with the client and "
                  f"the platform; load average {os.getloadavg()[0]:.1f} before)")
            print(f"{'route':<20}{'planned':>8}{'ok':>8}{'failed':>7}{'unsent':>7}{'answers/s':>10}"
                  f"{'p50 ms':>9}{'p99 ms':>9}")
            for name, path in ROUTES.items():
                figures = asyncio.run(load(port, path, key, args.rate, args.seconds))
                print(f"{name:<20}{figures['requests']:>8}{figures['ok']:>8}{figures['failed']:>7}{figures['unsent']:>7}"
                      f"{figures['throughput']:>10.0f}{figures['p50_ms']:>9.1f}{figures['p99_ms']:>9.1f}"
                      + (f"  failures: {dict(figures['failures'])}" if figures["failures"] else ""))
            print(f"load average after: {os.getloadavg()[0]:.1f}")
            loaded_rss = rss_mib(server.pid)
            if server.poll() is not None:
                raise SystemExit(f"the benchmark API server exited ({server.returncode}) during the load")
        finally:
            server.terminate()
            server.wait(timeout=30)

        seed_warehouse(env)  # for the warehouse pages (the API routes measured read the marts only)
        print(f"\ndashboard page render (AppTest, median of {args.renders})")
        for page, seconds in render_times(env_overrides(env), args.renders).items():
            print(f"  {page:<18}{1000 * seconds:>8.0f} ms")

    print("\nmemory (RSS)")
    print(f"  benchmark API server: {idle_rss:.0f} MiB idle, {loaded_rss:.0f} MiB after the load")
    supervisor = Supervisor(settings)
    if supervisor.is_running():
        processes = supervisor.processes()
        for service in ("api", "dashboards"):
            pid = processes.get(service, {}).get("pid")
            print(f"  live {service} service: " + (f"{rss_mib(pid):.0f} MiB" if pid else "not running"))


if __name__ == "__main__":
    main()
