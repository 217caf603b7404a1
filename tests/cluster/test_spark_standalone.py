"""A project job on a real Spark standalone cluster: a master and a worker started from the pyspark
wheel's own classes on loopback, the platform_smoke job submitted to ``spark://…`` through the
``spark_default`` connection, the project's packages shipped to the executors with the application."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from globalmart.platform.airflow_env import connections
from globalmart.spark import PACKAGE_ALIAS, application, submit_environment, submit_options
from globalmart.streaming.control import poll_until

pytestmark = pytest.mark.cluster

START_TIMEOUT = 180  # a JVM start on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(command: list[str], log: Path, ready: str, env: dict[str, str]) -> subprocess.Popen:
    """Starts a Spark daemon in its own process group and waits for its log to say it is ready."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    def started() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"exited {process.returncode}")
        return ready in log.read_text(errors="replace")

    try:
        poll_until(f"{command[1]} to start", started, START_TIMEOUT, every=0.2)
    except (RuntimeError, TimeoutError) as exc:
        stop_daemon(process)
        pytest.fail(f"{command[1]} did not start ({exc}):\n{log.read_text(errors='replace')[-3000:]}")
    return process


def stop_daemon(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """Master and one worker (1 core, 1.5 GB) on 127.0.0.1, from this venv's pyspark."""
    import pyspark

    base = tmp_path_factory.mktemp("spark-standalone")
    spark_class = str(Path(sys.executable).with_name("spark-class"))
    env = {
        **os.environ,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": "127.0.0.1",  # every listener (RPC, web UI) on loopback
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "SPARK_LOG_DIR": str(base),
    }
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    master = start_daemon(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(free_port())],
        base / "master.log", "I have been elected leader", env)
    try:
        worker = start_daemon(
            [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
             "--memory", "1536m", "--webui-port", str(free_port()), "--work-dir", str(base / "work")],
            base / "worker.log", "Successfully registered with master", env)
        try:
            yield url, base / "work"
        finally:
            stop_daemon(worker)
    finally:
        stop_daemon(master)


def test_the_platform_smoke_job_runs_on_the_standalone_cluster(platform, standalone, monkeypatch):
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
    from confluent_kafka import Producer

    from globalmart.smoke import count_loaded_rows, smoke_events

    url, work_dir = standalone
    cluster = platform.model_copy(update={"spark": platform.spark.model_copy(update={"master": url})})
    run_id = f"standalone-{uuid.uuid4().hex[:12]}"
    producer = Producer({"bootstrap.servers": cluster.kafka.bootstrap_servers})
    for key, value in smoke_events(run_id, 25):
        producer.produce(cluster.kafka.platform_smoke.name, key=key, value=value)
    assert producer.flush(30) == 0

    # the connection the DAGs use, with the cluster's master; the options every job gets
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(connections(cluster)["spark_default"]))
    options = submit_options(cluster)
    assert options["archives"].endswith(f"#{PACKAGE_ALIAS}")
    hook = SparkSubmitHook(
        conn_id="spark_default", name="platform_smoke", application_args=["--run-id", run_id],
        jars=options["jars"], conf=options["conf"], archives=options["archives"],
        driver_memory="768m", executor_memory="1g", env_vars=submit_environment(cluster),
    )
    assert hook._resolve_connection()["master"] == url
    started = time.monotonic()
    hook.submit(application("batch/platform_smoke.py"))
    print(f"platform_smoke on {url}: {time.monotonic() - started:.0f} s")

    assert count_loaded_rows(run_id, 25) == 25
    # the executor ran in the worker, with the shipped packages unpacked in its own folder
    shipped = list(work_dir.glob(f"app-*/*/{PACKAGE_ALIAS}/globalmart/postgres_sink.py"))
    assert shipped, f"no executor unpacked the packages under {work_dir}"
    assert (shipped[0].parents[1] / "spark_jobs" / "batch" / "platform_smoke.py").exists()


EXECUTOR_PROBE = '''
import sys
from pyspark.sql import SparkSession

def where(_):
    import globalmart.settings, spark_jobs.batch.platform_smoke as job
    yield globalmart.settings.__file__, job.__file__

spark = SparkSession.builder.appName("where-executors-import-from").getOrCreate()
for row in set(spark.sparkContext.parallelize(range(2), 2).mapPartitions(where).collect()):
    print("EXECUTOR", *row)
spark.stop()
'''


def test_executors_import_the_shipped_packages(standalone, settings, tmp_path):
    """Python code on the executors comes from the application's own copy of the packages, not
    from the worker machine's site-packages; the driver keeps its installed copy."""
    url, _ = standalone
    cluster = settings.model_copy(update={"spark": settings.spark.model_copy(update={"master": url})})
    script = tmp_path / "where.py"
    script.write_text(EXECUTOR_PROBE)
    command = submit_command_for(cluster, script)
    done = subprocess.run(command, env={**os.environ, **submit_environment(cluster)}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    locations = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("EXECUTOR")]
    assert locations
    for module_paths in locations:
        for path in module_paths:
            assert f"/work/app-" in path and f"/{PACKAGE_ALIAS}/" in path, path  # the executor's own folder


def submit_command_for(cluster, script: Path) -> list[str]:
    from globalmart.spark import submit_command

    command = submit_command(cluster, "batch/platform_smoke.py", streaming=False)
    command[command.index("--driver-memory") + 1] = "512m"
    return [*command[:-1], "--executor-memory", "768m", str(script)]
