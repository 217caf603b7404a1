"""How work is handed to Spark: the same jars and conf for every spark-submit."""

from __future__ import annotations

import sys
from pathlib import Path

from globalmart.settings import PROJECT_ROOT, Settings

SPARK_JOBS_DIR = PROJECT_ROOT / "spark_jobs"
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


def application(relative_path: str) -> str:
    """Absolute path of a spark-submit entry point under ``spark_jobs/``."""
    return str(SPARK_JOBS_DIR / relative_path)


def base_conf(settings: Settings) -> dict[str, str]:
    return {
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
    }


def streaming_conf(settings: Settings) -> dict[str, str]:
    """Conf of the streaming apps: few shuffle partitions (each is a state store instance
    committed every micro-batch), FAIR scheduling between the apps of one application (each
    app is a pool, see ``streaming.runner``), and state in RocksDB with changelog checkpointing."""
    conf = base_conf(settings) | {
        "spark.sql.shuffle.partitions": str(settings.streaming.shuffle_partitions),
        "spark.scheduler.mode": "FAIR",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        "spark.ui.enabled": "false",
        "spark.sql.codegen.cache.maxEntries": "2000",
    }
    if settings.streaming.rocksdb_state_store:
        conf |= {
            "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
            "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        }
    return conf


def submit_options(settings: Settings, streaming: bool = False) -> dict:
    """Keyword arguments for SparkSubmitOperator shared by every job.

    Connector jars come from the state dir (fetched from Maven Central by `make setup`)
    as local paths: nothing is resolved at run time.
    """
    return {
        "jars": ",".join(str(jar) for jar in settings.spark_jars),
        "driver_memory": settings.streaming.driver_memory if streaming else settings.spark.driver_memory,
        "conf": streaming_conf(settings) if streaming else base_conf(settings),
    }


def submit_command(settings: Settings, relative_path: str, args: list[str] = (), streaming: bool = True) -> list[str]:
    """The spark-submit command line of a job, as SparkSubmitOperator would build it."""
    options = submit_options(settings, streaming=streaming)
    spark_submit = Path(sys.executable).parent / "spark-submit"  # the pyspark wheel's, in this venv
    command = [str(spark_submit), "--master", settings.spark.master, "--jars", options["jars"],
               "--driver-memory", options["driver_memory"]]
    for key, value in options["conf"].items():
        command += ["--conf", f"{key}={value}"]
    return [*command, application(relative_path), *args]


def submit_environment(settings: Settings) -> dict[str, str]:
    """Environment for spark-submit from the pyspark wheel: its Spark home, this venv's Python
    for the driver and the workers (whatever ``python`` is first on PATH), a loopback address."""
    import pyspark

    env = {
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": settings.spark.local_ip,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    if not settings.spark.local_ip:  # unset (a container): Spark binds and advertises the host's address
        del env["SPARK_LOCAL_IP"]
    return env
