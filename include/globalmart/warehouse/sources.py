"""Where the daily batch reads and stages: the lake's datasets, the product catalog, the staging area.

- The lake (``settings.lake_dir``) holds one Parquet dataset per topic, partitioned by
  ``event_date``: a reader opens the dataset root and filters on ``event_date`` (the raw
  archiver's file sink keeps its file list in ``_spark_metadata``). A topic with no data yet
  reads as an empty frame with the contract's columns, so an empty day reaches the raw gate
  (which rejects it) instead of failing on a missing folder.
- Staging (write-audit-publish): ``<warehouse_dir>/staging/<day>/<table>/`` Parquet, one
  folder per run date and table, overwritten by each run of the step that writes it; the
  output gate audits it and only then does the publish step copy it into MongoDB.
- Gate results: ``<warehouse_dir>/staging/<day>/gates/<gate>.json`` (what failed, Data Docs path).
- Dimension state (:mod:`globalmart.warehouse.dimensions`): a run stages the new state of
  ``dim_customer`` and ``dim_product`` under ``<warehouse_dir>/staging/<day>/state/<table>/``
  (``current/``, ``history/``, and two marker files: the generation it was built from and its
  own); publishing promotes it to ``<warehouse_dir>/dimensions/<table>/``, the state MongoDB holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pyarrow.dataset as ds
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StructField, StructType

from globalmart.events import TOPIC_CONTRACTS
from globalmart.settings import Settings
from globalmart.streaming.contracts import spark_schema

# the star schema, RFM, product performance and sales trends: every table a run stages and publishes
FACT_SALES = "fact_sales"
DIMENSIONS = ("dim_date", "dim_customer", "dim_product", "dim_geography", "dim_payment_method")
CUSTOMER_RFM = "customer_rfm"
PRODUCT_PERFORMANCE = "product_performance"
SALES_TRENDS = "sales_trends"
TABLES = (FACT_SALES, *DIMENSIONS, CUSTOMER_RFM, PRODUCT_PERFORMANCE, SALES_TRENDS)
GATES_FOLDER = "gates"
STATE_FOLDER = "state"
# the dimensions kept as state (current rows and type-2 history); their staged table holds
# only the documents that changed
STATEFUL_DIMENSIONS = ("dim_customer", "dim_product")
GENERATION_FILE, BASE_FILE = "_GENERATION", "_BASE"
# the gates' names in ``globalmart.quality_gates.gates``, here for readers of their saved results
# that should not import Great Expectations (~15 s)
RAW_DAY_GATE, OUTPUT_GATE = "raw_day", "outputs"


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, inclusive."""
    if last < first:
        raise ValueError(f"the date range ends ({last}) before it starts ({first})")
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def lake_schema(topic_key: str) -> StructType:
    """The columns every lake dataset has: the contract's, and the partition columns."""
    contract = spark_schema(TOPIC_CONTRACTS[topic_key])
    return StructType([*contract.fields, StructField("event_date", DateType()), StructField("event_hour", IntegerType())])


def read_lake(spark: SparkSession, settings: Settings, topic_key: str, first: date | None, last: date,
              columns: list[str] | None = None) -> DataFrame:
    """Events of ``topic_key`` with ``first <= event_date <= last`` (partition pruning; no
    ``first``: from the lake's first day), only ``columns`` when given."""
    path = settings.lake_dir / topic_key
    if any(path.glob("event_date=*")):
        frame = spark.read.parquet(str(path))
    else:
        frame = spark.createDataFrame([], lake_schema(topic_key))
    frame = frame.where(F.col("event_date") <= F.lit(last))
    if first is not None:
        frame = frame.where(F.col("event_date") >= F.lit(first))
    return frame.select(*columns) if columns else frame


def read_catalog(spark: SparkSession, settings: Settings) -> DataFrame:
    """The ``product_catalog`` table of PostgreSQL (the shop's products), through JDBC."""
    postgres = settings.postgres
    return (
        spark.read.format("jdbc")
        .option("url", postgres.jdbc_url())
        .option("dbtable", "product_catalog")
        .option("user", postgres.user)
        .option("password", postgres.password.get_secret_value() if postgres.password else "")
        .option("driver", "org.postgresql.Driver")
        .load()
    )


def staging_dir(settings: Settings, day: date) -> Path:
    return settings.warehouse_dir / "staging" / day.isoformat()


def staged_path(settings: Settings, day: date, table: str) -> Path:
    return staging_dir(settings, day) / table


def write_staged(frame: DataFrame, settings: Settings, day: date, table: str) -> int:
    """Replace the staged ``table`` of ``day`` with ``frame``; the rows written."""
    path = staged_path(settings, day, table)
    frame.write.mode("overwrite").parquet(str(path))
    # counted from the Parquet footers: no second Spark job over the data
    return sum(fragment.metadata.num_rows for fragment in ds.dataset(str(path), format="parquet").get_fragments())


def read_staged(spark: SparkSession, settings: Settings, day: date, table: str) -> DataFrame:
    path = staged_path(settings, day, table)
    if not (path / "_SUCCESS").exists():
        raise FileNotFoundError(f"{table} of {day} is not staged ({path}): run the step that builds it first")
    return spark.read.parquet(str(path))


def staged_state_path(settings: Settings, day: date, table: str) -> Path:
    return staging_dir(settings, day) / STATE_FOLDER / table


def published_state_path(settings: Settings, table: str) -> Path:
    """The state of ``table`` MongoDB holds (promoted by the publish step)."""
    return settings.warehouse_dir / "dimensions" / table


def state_generation(path: Path, marker: str = GENERATION_FILE) -> str | None:
    """A state's generation (``GENERATION_FILE``) or the one it was built from (``BASE_FILE``,
    empty when built from nothing); None when there is no state at ``path``."""
    file = path / marker
    return file.read_text().strip() if file.exists() else None


def read_state(spark: SparkSession, path: Path) -> tuple[DataFrame, DataFrame] | None:
    """(current, history) of the state at ``path``; None when there is none."""
    if state_generation(path) is None:
        return None
    return spark.read.parquet(str(path / "current")), spark.read.parquet(str(path / "history"))


def gate_result_path(settings: Settings, day: date, gate: str) -> Path:
    return staging_dir(settings, day) / GATES_FOLDER / f"{gate}.json"


def save_gate_result(settings: Settings, result) -> Path:
    """A ``GateResult`` as JSON beside the staged tables (read by the publish step and people)."""
    path = gate_result_path(settings, result.day, result.gate)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "gate": result.gate, "day": result.day.isoformat(), "success": result.success,
        "evaluated": result.evaluated, "failures": [failure.describe() for failure in result.failures],
        "docs_index": str(result.docs_index), "pages": result.pages,
    }, indent=2))
    return path


def load_gate_result(settings: Settings, day: date, gate: str) -> dict | None:
    path = gate_result_path(settings, day, gate)
    return json.loads(path.read_text()) if path.exists() else None


def failed_gate_results(settings: Settings, gate: str, days: Sequence[date]) -> list[dict]:
    """The saved results of ``gate`` that failed among ``days`` (days not gated are skipped)."""
    results = (load_gate_result(settings, day, gate) for day in days)
    return [result for result in results if result is not None and not result["success"]]

