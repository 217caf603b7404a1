"""Run the gates: validate Spark DataFrames with Great Expectations, return what failed, build Data Docs.

Each call builds an ephemeral GX context from code (the suites, a Spark datasource with one
DataFrame asset and validation definition per dataset) whose validation results and Data
Docs are files under ``<state_dir>/great_expectations`` (``settings.great_expectations_dir``):

- ``validations/``: every run's results, kept so the Data Docs index shows the history;
- ``data_docs/index.html``: the Data Docs site, rebuilt once per gate run.

Only results and docs touch the disk, and each run writes its own result files, so several
days can be gated at once (a backfill); the suites live in code, not in a store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time as clock, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context import EphemeralDataContext
from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from pyspark import StorageLevel
from pyspark.sql import DataFrame

from globalmart.quality_gates import frames, suites
from globalmart.settings import Settings

log = logging.getLogger(__name__)

RAW_DAY_GATE = "raw_day"
OUTPUT_GATE = "outputs"
DOCS_SITE = "local_site"
RESULTS_DIR, DOCS_DIR = "validations", "data_docs"  # under settings.great_expectations_dir
DATASOURCE = "globalmart"

# columns that identify a row in each dataset: unexpected examples are reported with them
DATASET_KEYS = {
    suites.RAW_TRANSACTIONS: ["transaction_id"],
    suites.RAW_PRODUCT_VIEWS: ["event_id"],
    suites.RAW_CART_EVENTS: ["event_id"],
    suites.FACT_SALES: ["transaction_id", "line_number"],
    suites.CUSTOMER_RFM: ["user_id"],
}


@dataclass(frozen=True)
class FailedExpectation:
    dataset: str  # the suite's name, e.g. raw_transactions
    expectation: str  # e.g. expect_column_values_to_not_be_null
    column: str | None  # None for table-level expectations
    expected: dict[str, Any]  # the expectation's arguments with the run's parameters filled in
    observed_value: Any  # of aggregate expectations (row count, column set, type)
    unexpected_count: int | None  # of row-level expectations
    unexpected_examples: list[Any]  # a few offending rows: their keys and the value
    error: str | None  # why the expectation could not be evaluated (e.g. a missing column)

    def describe(self) -> str:
        """One line: ``<dataset>.<column>: <expectation> (<arguments>) — <what was found>``."""
        target = f"{self.dataset}.{self.column}" if self.column else self.dataset
        parts = [f"{target}: {self.expectation} ({_text(self.expected)})"]
        if self.error:
            parts.append(f"error: {self.error}")
        if self.observed_value is not None:
            parts.append(f"observed {_text(self.observed_value)}")
        if self.unexpected_count is not None:
            parts.append(f"{self.unexpected_count} unexpected, e.g. {_text(self.unexpected_examples)}")
        return " — ".join(parts)


def _text(value: Any) -> str:
    """Readable values for people: ``key=value`` pairs, datetimes in ISO form."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "[" + "; ".join(_text(item) for item in value) + "]"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class GateResult:
    gate: str  # raw_day or outputs
    day: date
    success: bool
    evaluated: int  # expectations evaluated over all datasets
    failures: list[FailedExpectation]
    pages: dict[str, str]  # dataset → URL of its validation page in Data Docs
    docs_index: Path  # the Data Docs index page

    @property
    def docs_url(self) -> str:
        return self.docs_index.as_uri()

    def summary(self) -> str:
        """Plain text for logs and the failure email."""
        verdict = "passed" if self.success else f"FAILED {len(self.failures)} of {self.evaluated} expectations"
        lines = [f"{self.gate} gate for {self.day}: {verdict}"]
        lines += [f"- {failure.describe()}" for failure in self.failures]
        lines.append(f"Data Docs: {self.docs_url}")
        return "\n".join(lines)


def quality_context(root: Path, docs_index_runs: int) -> EphemeralDataContext:
    """An ephemeral GX context whose validation results and Data Docs are files under ``root``."""
    in_memory = {"class_name": "InMemoryStoreBackend"}
    config = DataContextConfig(
        analytics_enabled=False,  # no usage statistics: the platform may have no internet access
        progress_bars=ProgressBarsConfig(globally=False),  # carriage-return bars garble task logs
        stores={
            "expectations_store": {"class_name": "ExpectationsStore", "store_backend": in_memory},
            "validation_definition_store": {"class_name": "ValidationDefinitionStore", "store_backend": in_memory},
            "validation_results_store": {
                "class_name": "ValidationResultsStore",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(root / RESULTS_DIR)},
            },
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(root / DOCS_DIR)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                       "validation_results_limit": docs_index_runs},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _exception_messages(exception_info: dict) -> list[str]:
    """GX reports one exception, or one per metric that failed to compute."""
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    return sorted({info["exception_message"] for info in infos if info.get("raised_exception")})


def _failures(dataset: str, validation) -> list[FailedExpectation]:
    failures = []
    for outcome in validation.results:
        if outcome.success:
            continue
        kwargs = dict(outcome.expectation_config.kwargs)
        result = outcome.result or {}
        errors = _exception_messages(outcome.exception_info or {})
        column = kwargs.pop("column", None)
        kwargs.pop("batch_id", None)
        failures.append(FailedExpectation(
            dataset=dataset,
            expectation=outcome.expectation_config.type,
            column=column,
            expected=kwargs,
            # distinct-value expectations report what is missing instead of an observed value
            observed_value=(result.get("observed_value") if "partial_missing_list" not in result
                            else {"missing": result["partial_missing_list"]}),
            unexpected_count=result.get("unexpected_count"),
            unexpected_examples=(result.get("partial_unexpected_index_list")
                                 or result.get("partial_unexpected_list") or []),
            error="; ".join(errors) or None,
        ))
    return failures


def _run_gate(gate: str, day: date, datasets: dict[str, DataFrame], parameters: dict, settings: Settings) -> GateResult:
    """Validate each dataset (suite name → DataFrame) with its suite, then build Data Docs once."""
    root = settings.great_expectations_dir
    context = quality_context(root, settings.warehouse.data_docs_index_runs)
    # every suite is registered so that the Data Docs index lists both gates' suites
    all_suites = (build() for build in suites.RAW_DAY_SUITES + suites.OUTPUT_SUITES)
    registered = {suite.name: context.suites.add(suite) for suite in all_suites}
    source = context.data_sources.add_spark(DATASOURCE, persist=False)  # caching is done here, per dataset
    run_id = RunIdentifier(run_name=f"{gate}-{day.isoformat()}", run_time=datetime.now(UTC))

    evaluated, failures, result_ids = 0, [], {}
    for name, frame in datasets.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("day")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=registered[name]))
        started = time.monotonic()
        run = partial(definition.run, expectation_parameters=parameters, run_id=run_id)
        # pass/fail alone takes a few scans that read only the columns they need (GX bundles
        # the aggregates), faster uncached than caching every column; the examples of what is
        # unexpected cost a scan per expectation, so they are collected, over a cache, only
        # when something failed
        validation = run(batch_parameters={"dataframe": frame}, result_format="BOOLEAN_ONLY")
        if not validation.success:
            owned_cache = frame.storageLevel == StorageLevel.NONE  # a cache the caller made is left in place
            cached = frame.cache() if owned_cache else frame
            try:
                validation = run(batch_parameters={"dataframe": cached},
                                 result_format={"result_format": "SUMMARY",
                                                "unexpected_index_column_names": DATASET_KEYS[name]})
            finally:
                if owned_cache:
                    cached.unpersist()
        found = _failures(name, validation)
        log.info("%s: %d expectations, %d failed (%.1f s)", name, len(validation.results), len(found),
                 time.monotonic() - started)
        evaluated += len(validation.results)
        failures += found
        # the detailed run was stored under the same key, over the first one
        result_ids[name] = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=name), run_id=run_id,
            batch_identifier=validation.batch_id)

    context.build_data_docs(
        site_names=[DOCS_SITE],
        resource_identifiers=list(result_ids.values()) + [ExpectationSuiteIdentifier(name=name) for name in registered],
    )
    pages = {name: context.get_docs_sites_urls(resource_identifier=result_id, site_name=DOCS_SITE)[0]["site_url"]
             for name, result_id in result_ids.items()}
    result = GateResult(gate=gate, day=day, success=not failures, evaluated=evaluated, failures=failures,
                        pages=pages, docs_index=root / DOCS_DIR / "index.html")
    (log.info if result.success else log.error)("%s", result.summary())
    return result


def validate_raw_day(day: date, transactions: DataFrame, product_views: DataFrame, cart_events: DataFrame,
                     trailing_average: float | None, settings: Settings) -> GateResult:
    """The raw-day gate over one day of the lake (each dataset already filtered to ``event_date = day``).

    ``trailing_average``: transactions per day before ``day`` (``frames.trailing_daily_average``),
    None without history; the day must fall within ``warehouse.volume_min_ratio`` ..
    ``volume_max_ratio`` of it, and is never empty. Each hour must hold ``warehouse.hourly_min_share``
    of the day's hourly average (``frames.hourly_minimum``).
    """
    warehouse = settings.warehouse
    min_transactions, max_transactions = frames.volume_band(
        trailing_average, warehouse.volume_min_ratio, warehouse.volume_max_ratio)
    hourly = frames.hourly_counts(transactions)
    min_per_hour = frames.hourly_minimum(hourly, warehouse.hourly_min_share)
    start = datetime.combine(day, clock(), tzinfo=UTC)
    parameters = {
        suites.DAY_START: start,
        suites.DAY_END: start + timedelta(days=1),
        suites.COUNTRIES: settings.catalog.countries,
        suites.PAYMENT_METHODS: settings.catalog.payment_methods,
        suites.MIN_TRANSACTIONS: min_transactions,
        suites.MAX_TRANSACTIONS: max_transactions,
        suites.REQUIRED_HOURS: frames.HOURS if min_per_hour >= 1 else [],
        suites.MIN_HOUR_TRANSACTIONS: min_per_hour,
    }
    datasets = {
        suites.RAW_TRANSACTIONS: frames.audited_transactions(transactions, hourly),
        suites.RAW_PRODUCT_VIEWS: product_views,
        suites.RAW_CART_EVENTS: cart_events,
    }
    return _run_gate(RAW_DAY_GATE, day, datasets, parameters, settings)


def validate_outputs(day: date, raw_transactions: DataFrame, fact_sales: DataFrame, customer_rfm: DataFrame,
                     dimensions: Mapping[str, DataFrame], settings: Settings) -> GateResult:
    """The output gate over the staged warehouse of ``day``.

    ``raw_transactions``: the day's lake transactions the facts were built from;
    ``dimensions``: table name → DataFrame for each dimension of ``frames.FACT_DIMENSIONS``.
    """
    datasets = {
        suites.FACT_SALES: frames.audited_fact_sales(fact_sales, dimensions),
        suites.CUSTOMER_RFM: customer_rfm,
    }
    parameters = {suites.RAW_LINE_COUNT: frames.line_count(raw_transactions)}
    return _run_gate(OUTPUT_GATE, day, datasets, parameters, settings)
