"""Great Expectations gates: a clean day passes, each injected defect fails its own expectation."""

import json
from datetime import date

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from globalmart.quality_gates import trailing_daily_average, validate_outputs, validate_raw_day
from globalmart.quality_gates.frames import volume_band
from globalmart.quality_gates.suites import EXPORT_DIR, OUTPUT_SUITES, RAW_DAY_SUITES, suite_document
from globalmart.warehouse.rfm import customer_figures, customer_rfm
from globalmart.warehouse.star import dim_customer, dim_date, dim_geography, dim_payment_method, dim_product, fact_sales
from spark_jobs.streaming.raw_archiver import lake_rows
from tests.streaming_fixtures import CART, DAY, TRANSACTION, VIEW, at, cart, transaction, view

PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"
TODAY = DAY.date()


def lake(spark, rows, schema: StructType):
    """Rows as the raw archiver's Parquet reads back: every column nullable, partition columns added."""
    nullable = StructType([StructField(field.name, field.dataType, nullable=True) for field in schema.fields])
    return lake_rows(spark.createDataFrame(rows, nullable))


def day_transactions():
    return [
        transaction(at(0), user="U1", tx_id="T1", lines=[("P1", PHONES, 2, 19.99), ("P2", BOOKS, 1, 5.0)]),
        transaction(at(12, 30), user="U2", tx_id="T2", lines=[("P2", BOOKS, 3, 7.5)], country="UK"),
        transaction(at(23, 59, 59.5), user="U1", tx_id="T3", lines=[("P1", PHONES, 1, 1234.56)]),
    ]


@pytest.fixture(scope="module")
def gate_settings(settings, tmp_path_factory):
    """Settings whose GX results and Data Docs are private to this module; the Data Docs index
    lists only the latest runs, as every build re-reads the runs it lists."""
    warehouse = settings.warehouse.model_copy(update={"data_docs_index_runs": 5})
    return settings.model_copy(update={"great_expectations_dir": tmp_path_factory.mktemp("great_expectations"),
                                       "warehouse": warehouse})


@pytest.fixture(scope="module")
def raw_day(spark):
    views = [view(at(9), user="U1", product="P1"), view(at(12), user="U2", product="P2", category=BOOKS, country="UK")]
    carts = [cart(at(9, 5), "add", user="U1"), cart(at(9, 6), "checkout", user="U1", cart_value=44.98)]
    return {
        "transactions": lake(spark, day_transactions(), TRANSACTION),
        "product_views": lake(spark, views, VIEW),
        "cart_events": lake(spark, carts, CART),
    }


def run_raw_gate(raw_day, settings, transactions=None, trailing_average=3.0):
    return validate_raw_day(TODAY, raw_day["transactions"] if transactions is None else transactions,
                            raw_day["product_views"], raw_day["cart_events"], trailing_average, settings)


def failed(result):
    return {(failure.dataset, failure.expectation, failure.column) for failure in result.failures}


@pytest.fixture(scope="module")
def clean_raw_result(raw_day, gate_settings):
    return run_raw_gate(raw_day, gate_settings)


def test_a_clean_day_passes_the_raw_gate(clean_raw_result):
    assert clean_raw_result.success, clean_raw_result.summary()
    assert clean_raw_result.failures == []
    assert clean_raw_result.evaluated == sum(len(build().expectations) for build in RAW_DAY_SUITES)


def test_the_raw_gate_builds_data_docs(clean_raw_result, gate_settings):
    index = clean_raw_result.docs_index
    assert index == gate_settings.great_expectations_dir / "data_docs" / "index.html"
    assert index.is_file() and "raw_transactions" in index.read_text()
    assert clean_raw_result.docs_url.startswith("file://") and clean_raw_result.docs_url.endswith("/index.html")
    assert set(clean_raw_result.pages) == {"raw_transactions", "raw_product_views", "raw_cart_events"}
    for url in clean_raw_result.pages.values():
        assert url.startswith(index.parent.as_uri()) and url.endswith(".html")


def _set(column, sql, transaction_id):
    """Set ``column`` of one transaction to a SQL expression (over the row's columns)."""
    return lambda t: t.withColumn(column, F.when(F.col("transaction_id") == transaction_id, F.expr(sql))
                                  .otherwise(F.col(column)))


def _add_transaction(lines):
    return lambda t: t.unionByName(lake(t.sparkSession, [transaction(at(8), user="U3", tx_id="T4", lines=lines)],
                                        TRANSACTION))


# defect → (injected into the day's transactions, the (dataset, expectation, column) that fail)
RAW_DEFECTS = {
    "null id": (
        _set("transaction_id", "NULL", "T2"),
        {("raw_transactions", "expect_column_values_to_not_be_null", "transaction_id")},
    ),
    "negative amount": (
        _add_transaction([("P1", PHONES, 1, -5.0)]),
        {("raw_transactions", "expect_column_values_to_be_between", "total_amount"),
         ("raw_transactions", "expect_column_values_to_be_between", "min_line_unit_price")},
    ),
    "duplicate transaction id": (
        _set("transaction_id", "'T1'", "T3"),
        {("raw_transactions", "expect_column_values_to_be_unique", "transaction_id")},
    ),
    "total not the sum of lines": (
        _set("total_amount", "total_amount + 0.01", "T1"),
        {("raw_transactions", "expect_column_values_to_be_between", "total_vs_lines")},
    ),
    "unknown country": (
        _set("country", "'Spain'", "T2"),
        {("raw_transactions", "expect_column_values_to_be_in_set", "country")},
    ),
    "event outside the day": (
        _set("event_time", "event_time + INTERVAL 1 SECOND", "T3"),  # 23:59:59.5 → the next day
        {("raw_transactions", "expect_column_values_to_be_between", "event_time")},
    ),
}


@pytest.fixture(scope="module")
def raw_gate_with(raw_day, gate_settings):
    """The raw gate's result on the day with one of ``RAW_DEFECTS`` (each run once)."""
    results = {}

    def run(defect):
        if defect not in results:
            inject, _ = RAW_DEFECTS[defect]
            results[defect] = run_raw_gate(raw_day, gate_settings, transactions=inject(raw_day["transactions"]))
        return results[defect]

    return run


@pytest.mark.parametrize("defect", list(RAW_DEFECTS))
def test_each_raw_defect_fails_its_expectation(raw_gate_with, defect):
    result = raw_gate_with(defect)
    assert not result.success
    assert failed(result) == RAW_DEFECTS[defect][1], result.summary()


def test_failures_name_the_offending_rows(raw_gate_with):
    result = raw_gate_with("unknown country")
    (failure,) = result.failures
    assert failure.unexpected_count == 1
    assert failure.unexpected_examples == [{"transaction_id": "T2", "country": "Spain"}]
    assert failure.expected["value_set"] == ["USA", "UK", "Canada", "Germany", "France"]
    assert "raw_transactions.country: expect_column_values_to_be_in_set" in result.summary()


def test_an_empty_day_fails(raw_day, gate_settings):
    empty = {name: frame.limit(0) for name, frame in raw_day.items()}
    result = run_raw_gate(empty, gate_settings)
    assert failed(result) == {(dataset, "expect_table_row_count_to_be_between", None)
                              for dataset in ("raw_transactions", "raw_product_views", "raw_cart_events")}
    assert {f.observed_value for f in result.failures} == {0}


def test_a_day_far_below_its_trailing_average_fails(raw_day, gate_settings):
    result = run_raw_gate(raw_day, gate_settings, trailing_average=100.0)
    assert failed(result) == {("raw_transactions", "expect_table_row_count_to_be_between", None)}
    (failure,) = result.failures
    assert (failure.observed_value, failure.expected["min_value"], failure.expected["max_value"]) == (3, 50, 200)


def _transactions_per_hour(spark, per_hour: dict[int, int], default: int):
    """A day with ``per_hour[hour]`` transactions in each hour listed and ``default`` in the others."""
    rows = [transaction(at(hour, 20, i), user="U1", tx_id=f"H{hour}-{i}", lines=[("P1", PHONES, 1, 19.99)])
            for hour in range(24) for i in range(per_hour.get(hour, default))]
    return lake(spark, rows, TRANSACTION)


def hourly_gate(spark, raw_day, gate_settings, min_share, per_hour):
    warehouse = gate_settings.warehouse.model_copy(update={"hourly_min_share": min_share})
    settings = gate_settings.model_copy(update={"warehouse": warehouse})
    transactions = _transactions_per_hour(spark, per_hour, 2)
    return run_raw_gate(raw_day, settings, transactions=transactions, trailing_average=None)


def test_an_empty_hour_fails_the_hourly_coverage(spark, raw_day, gate_settings):
    assert hourly_gate(spark, raw_day, gate_settings, 0.6, {}).success  # 2 per hour, each needs floor(0.6 × 2) = 1
    result = hourly_gate(spark, raw_day, gate_settings, 0.6, {5: 0})  # 46 a day: still floor(0.6 × 46 / 24) = 1
    assert failed(result) == {("raw_transactions", "expect_column_distinct_values_to_contain_set", "hour_of_day")}
    (failure,) = result.failures
    assert failure.expected["value_set"] == list(range(24))
    assert failure.observed_value == {"missing": [5]}
    assert "raw_transactions.hour_of_day: expect_column_distinct_values_to_contain_set" in result.summary()
    assert "observed missing=[5]" in result.summary()


def test_a_thin_hour_fails_the_hourly_coverage(spark, raw_day, gate_settings):
    result = hourly_gate(spark, raw_day, gate_settings, 1.0, {3: 1, 4: 4})  # 48 a day: each hour needs 2
    assert failed(result) == {("raw_transactions", "expect_column_values_to_be_between", "transactions_in_hour")}
    (failure,) = result.failures
    assert failure.expected["min_value"] == 2
    assert failure.unexpected_examples == [{"transaction_id": "H3-0", "transactions_in_hour": 1}]


def test_a_sparse_day_may_have_empty_hours(clean_raw_result):
    # 3 transactions in a day: a tenth of the hourly average rounds down to none, so no hour is required
    assert clean_raw_result.success


def test_volume_band():
    assert volume_band(None, 0.5, 2.0) == (1, None)  # no history: any day but an empty one
    assert volume_band(100_000.0, 0.5, 2.0) == (50_000, 200_000)
    assert volume_band(1.0, 0.5, 2.0) == (1, 2)


def test_trailing_daily_average_skips_days_without_data(spark):
    per_day = {12: 2, 17: 4, 19: 3}
    rows = [transaction(at(1).replace(day=d), tx_id=f"A{d}-{i}") for d, n in per_day.items() for i in range(n)]
    lake_days = lake(spark, rows + day_transactions(), TRANSACTION)
    assert trailing_daily_average(lake_days, TODAY, 7) == pytest.approx(3.5)  # the 12th is outside, the 20th is the day
    assert trailing_daily_average(lake_days, date(2026, 11, 12), 7) is None


# --- output gate -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def staged(spark, settings, raw_day):
    transactions = raw_day["transactions"]
    catalog = spark.createDataFrame([("P1", "Phone", PHONES, 19.99, 4.5), ("P2", "Novel", BOOKS, 7.5, 4.0)],
                                    "product_id string, name string, category string, price double, rating double")
    catalog_settings = settings.catalog
    return {
        "fact_sales": fact_sales(transactions),
        "customer_rfm": customer_rfm(transactions, TODAY, 365),
        "dimensions": {
            "dim_date": dim_date(spark, TODAY, TODAY, catalog_settings.countries),
            "dim_customer": dim_customer(customer_figures(transactions, TODAY, 365),
                                         customer_rfm(transactions, TODAY, 365), TODAY),
            "dim_product": dim_product(catalog),
            "dim_geography": dim_geography(spark, catalog_settings.countries, catalog_settings.country_utc_offsets),
            "dim_payment_method": dim_payment_method(spark, catalog_settings.payment_methods),
        },
    }


def run_output_gate(raw_day, staged, settings, **replaced):
    outputs = {**staged, **replaced}
    return validate_outputs(TODAY, raw_day["transactions"], outputs["fact_sales"], outputs["customer_rfm"],
                            outputs["dimensions"], settings)


def test_clean_outputs_pass_the_output_gate(raw_day, staged, gate_settings):
    result = run_output_gate(raw_day, staged, gate_settings)
    assert result.success, result.summary()
    assert result.evaluated == sum(len(build().expectations) for build in OUTPUT_SUITES)
    assert set(result.pages) == {"fact_sales", "customer_rfm"} and result.docs_index.is_file()


def _replace(column, when_user, value):
    return lambda rfm: rfm.withColumn(column, F.when(F.col("user_id") == when_user, F.lit(value))
                                      .otherwise(F.col(column)))


def _without_product(product_key):
    def drop(staged):
        dimensions = staged["dimensions"]
        products = dimensions["dim_product"].where(F.col("product_key") != product_key)
        return {"dimensions": {**dimensions, "dim_product": products}}
    return drop


OUTPUT_DEFECTS = {
    "score out of 1..5": (
        lambda s: {"customer_rfm": _replace("m_score", "U2", 6)(s["customer_rfm"])},
        {("customer_rfm", "expect_column_values_to_be_between", "m_score")},
    ),
    "unknown segment": (
        lambda s: {"customer_rfm": _replace("rfm_segment", "U1", "VIP")(s["customer_rfm"])},
        {("customer_rfm", "expect_column_values_to_be_in_set", "rfm_segment")},
    ),
    "orphan product key": (
        _without_product("P2"),
        {("fact_sales", "expect_column_values_to_be_null", "orphan_product_key")},
    ),
    "facts missing a line": (
        lambda s: {"fact_sales": s["fact_sales"].where("NOT (transaction_id = 'T1' AND line_number = 2)")},
        {("fact_sales", "expect_table_row_count_to_equal", None)},
    ),
}


@pytest.fixture(scope="module")
def output_gate_with(raw_day, staged, gate_settings):
    """The output gate's result on the staged outputs with one of ``OUTPUT_DEFECTS`` (each run once)."""
    results = {}

    def run(defect):
        if defect not in results:
            inject, _ = OUTPUT_DEFECTS[defect]
            results[defect] = run_output_gate(raw_day, staged, gate_settings, **inject(staged))
        return results[defect]

    return run


@pytest.mark.parametrize("defect", list(OUTPUT_DEFECTS))
def test_each_output_defect_fails_its_expectation(output_gate_with, defect):
    result = output_gate_with(defect)
    assert not result.success
    assert failed(result) == OUTPUT_DEFECTS[defect][1], result.summary()


def test_orphan_failures_list_the_orphan_keys(output_gate_with):
    (failure,) = output_gate_with("orphan product key").failures
    assert failure.unexpected_count == 2
    orphans = sorted((row["transaction_id"], row["line_number"], row["orphan_product_key"])
                     for row in failure.unexpected_examples)
    assert orphans == [("T1", 2, "P2"), ("T2", 1, "P2")]


REGENERATE = "run `.venv/bin/python -m globalmart.quality_gates`"


def test_exported_suites_are_current():
    for build in RAW_DAY_SUITES + OUTPUT_SUITES:
        suite = build()
        path = EXPORT_DIR / f"{suite.name}.json"
        assert path.exists(), f"{path} missing: {REGENERATE}"
        assert json.loads(path.read_text()) == suite_document(suite), f"{path} is stale: {REGENERATE}"
