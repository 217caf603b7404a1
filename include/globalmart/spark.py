"""How work is handed to Spark: the same jars and conf for every spark-submit."""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

from globalmart.settings import PROJECT_ROOT, Settings

SPARK_JOBS_DIR = PROJECT_ROOT / "spark_jobs"
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
# the folder an executor unpacks the shipped packages into (--archives …#alias), on its PYTHONPATH
PACKAGE_ALIAS = "globalmart_packages"


def ships_packages(settings: Settings) -> bool:
    """On a cluster (any master but ``local``), executors import the driver's own code, shipped
    with each application, not whatever version their machine's site-packages hold."""
    return not settings.spark.master.startswith("local")


def package_archive(settings: Settings) -> Path:
    """The project's Python packages (``globalmart``, ``spark_jobs``, with their data files) as one
    zip under ``<state_dir>/dist``, named by its content: built once per version of the code."""
    import globalmart

    roots = [Path(globalmart.__file__).parent, SPARK_JOBS_DIR]
    files = sorted(
        (path.relative_to(root.parent).as_posix(), path)
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    target = settings.state_dir / "dist" / f"globalmart-{digest.hexdigest()[:16]}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, path in files:  # fixed times: the same code gives the same bytes
                archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), path.read_bytes())
        os.replace(partial, target)
    return target


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
    options = {
        "jars": ",".join(str(jar) for jar in settings.spark_jars),
        "driver_memory": settings.streaming.driver_memory if streaming else settings.spark.driver_memory,
        "conf": streaming_conf(settings) if streaming else base_conf(settings),
    }
    if ships_packages(settings):
        # unpacked (not imported from the zip) so that package data files read by path work; the
        # driver keeps its own installed copy (--py-files would put the zip first on its path too)
        options["archives"] = f"{package_archive(settings)}#{PACKAGE_ALIAS}"
        options["conf"] = options["conf"] | {"spark.executorEnv.PYTHONPATH": PACKAGE_ALIAS}
    return options


def submit_command(settings: Settings, relative_path: str, args: list[str] = (), streaming: bool = True) -> list[str]:
    """The spark-submit command line of a job, as SparkSubmitOperator would build it."""
    options = submit_options(settings, streaming=streaming)
    spark_submit = Path(sys.executable).parent / "spark-submit"  # the pyspark wheel's, in this venv
    command = [str(spark_submit), "--master", settings.spark.master, "--jars", options["jars"],
               "--driver-memory", options["driver_memory"]]
    if "archives" in options:
        command += ["--archives", options["archives"]]
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
