"""Benchmark: parse time of each DAG file (run by hand: `make parse-times`).

Each file is parsed in a fresh interpreter after Airflow itself is imported, so the figure is
what the file adds: its own imports (providers, project modules) and top-level code.
Target: under 1 s per file.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from globalmart.dag_parsing import dag_files
from globalmart.platform.airflow_env import airflow_environment
from globalmart.settings import load_settings

CHILD = """
import json, sys, time
import airflow.sdk, airflow.dag_processing.dagbag as d
bag = d.DagBag(dag_folder=sys.argv[1], collect_dags=False)
started = time.perf_counter()
bag.process_file(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started, "dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""


def main() -> None:
    env = {**os.environ, **airflow_environment(load_settings())}
    print(f"{'DAG file':<32}{'min s':>8}{'median s':>10}{'max s':>8}  dags  errors   (5 fresh interpreters each)")
    for path in dag_files():
        runs = []
        for _ in range(5):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        times = sorted(r["seconds"] for r in runs)
        print(
            f"{path.name:<32}{times[0]:>8.3f}{statistics.median(times):>10.3f}{times[-1]:>8.3f}"
            f"  {runs[0]['dags']:>4}  {runs[0]['errors']:>6}"
        )


if __name__ == "__main__":
    main()
