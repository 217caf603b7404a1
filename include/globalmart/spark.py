"""How Airflow hands work to Spark: the same jars and conf for every spark-submit."""

from __future__ import annotations

from globalmart.settings import PROJECT_ROOT, Settings

SPARK_JOBS_DIR = PROJECT_ROOT / "spark_jobs"


def application(relative_path: str) -> str:
    """Absolute path of a spark-submit entry point under ``spark_jobs/``."""
    return str(SPARK_JOBS_DIR / relative_path)


def submit_options(settings: Settings) -> dict:
    """Keyword arguments for SparkSubmitOperator shared by every job.

    Connector jars come from the state dir (fetched from Maven Central by `make setup`)
    as local paths: nothing is resolved at run time.
    """
    return {
        "jars": ",".join(str(jar) for jar in settings.spark_jars),
        "driver_memory": settings.spark.driver_memory,
        "conf": {
            "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
        },
    }

