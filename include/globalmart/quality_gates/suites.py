"""The expectation suites of the daily batch's two gates, as code.

Raw-day gate, one suite per lake dataset of the day:

- ``raw_transactions``: the contract's columns and types, transaction_id not null and unique,
  user_id and total_amount not null, country and payment method known, event time inside the
  day, amounts ≥ 0 (total, every line's unit price; every line's quantity ≥ 1, at least one
  line), total equals its lines within a cent, row count within the volume band, and coverage
  by hour: every hour (UTC) has transactions and each holds at least
  ``warehouse.hourly_min_share`` of the day's hourly average (both only when that is at least
  one transaction: on a sparse day an empty hour is plausible);
- ``raw_product_views``, ``raw_cart_events``: the contract's columns and types, event_id not
  null and unique, user_id not null, country known, event time inside the day, at least one row;
  cart prices and values ≥ 0.

Output gate:

- ``fact_sales``: as many rows as the raw day has line items, dimension keys not null and
  none an orphan (absent from its dimension);
- ``customer_rfm``: user_id not null, R, F, M and FM scores 1..5, segment one of ``SEGMENTS``.

What changes per run (the day's bounds, the settings' countries and payment methods, the
volume band, the raw line count) is a suite parameter (``{"$PARAMETER": name}``) filled in
by the gate, so the suites are fixed: ``python -m globalmart.quality_gates`` exports them to
the project's ``great_expectations/expectations/`` for review, and a unit test keeps that
export current.
"""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
from pydantic import BaseModel

from globalmart.events import CENT, CartEvent, ProductView, Transaction
from globalmart.quality_gates.frames import (
    FACT_DIMENSIONS,
    HOUR_OF_DAY,
    LINE_COUNT,
    MIN_LINE_QUANTITY,
    MIN_LINE_UNIT_PRICE,
    TOTAL_VS_LINES,
    TRANSACTIONS_IN_HOUR,
    orphan_column,
)
from globalmart.settings import PROJECT_ROOT
from globalmart.streaming.contracts import spark_schema
from globalmart.warehouse.rfm import QUINTILES, SEGMENTS

EXPORT_DIR = PROJECT_ROOT / "great_expectations" / "expectations"

RAW_TRANSACTIONS = "raw_transactions"
RAW_PRODUCT_VIEWS = "raw_product_views"
RAW_CART_EVENTS = "raw_cart_events"
FACT_SALES = "fact_sales"
CUSTOMER_RFM = "customer_rfm"

# suite parameters, filled in by the gates
DAY_START, DAY_END = "day_start", "day_end"
COUNTRIES, PAYMENT_METHODS = "countries", "payment_methods"
MIN_TRANSACTIONS, MAX_TRANSACTIONS = "min_transactions", "max_transactions"
RAW_LINE_COUNT = "raw_line_count"
REQUIRED_HOURS, MIN_HOUR_TRANSACTIONS = "required_hours", "min_hour_transactions"

# the lake's partition column every batch step reads, beside the contract's fields
LAKE_COLUMNS = {"event_date": "DateType"}


def parameter(name: str) -> dict:
    return {"$PARAMETER": name}


def _contract_schema(contract: type[BaseModel]) -> list[gxe.Expectation]:
    """The lake dataset has the contract's columns (and the partition date) with their Spark types."""
    types = {field.name: type(field.dataType).__name__ for field in spark_schema(contract).fields} | LAKE_COLUMNS
    return [gxe.ExpectTableColumnsToMatchSet(column_set=list(types), exact_match=False)] + [
        gxe.ExpectColumnValuesToBeOfType(column=column, type_=type_name) for column, type_name in types.items()
    ]


def _event_basics(contract: type[BaseModel], event_id: str) -> list[gxe.Expectation]:
    """Schema, a not-null unique id, a known country and an event time inside the day."""
    return _contract_schema(contract) + [
        gxe.ExpectColumnValuesToNotBeNull(column=event_id),
        gxe.ExpectColumnValuesToBeUnique(column=event_id),
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        gxe.ExpectColumnValuesToBeInSet(column="country", value_set=parameter(COUNTRIES)),
        gxe.ExpectColumnValuesToNotBeNull(column="event_time"),
        gxe.ExpectColumnValuesToBeBetween(
            column="event_time", min_value=parameter(DAY_START), max_value=parameter(DAY_END), strict_max=True,
            description="event_time is inside the day (UTC)",
        ),
    ]


def raw_transactions() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=RAW_TRANSACTIONS, expectations=_event_basics(Transaction, "transaction_id") + [
        gxe.ExpectColumnValuesToBeInSet(column="payment_method", value_set=parameter(PAYMENT_METHODS)),
        gxe.ExpectColumnValuesToNotBeNull(column="total_amount"),
        gxe.ExpectColumnValuesToBeBetween(column="total_amount", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column=LINE_COUNT, min_value=1, description="every transaction has a line"),
        gxe.ExpectColumnValuesToBeBetween(
            column=MIN_LINE_QUANTITY, min_value=1, description="every line's quantity is at least 1"),
        gxe.ExpectColumnValuesToBeBetween(
            column=MIN_LINE_UNIT_PRICE, min_value=0, description="every line's unit price is at least 0"),
        gxe.ExpectColumnValuesToBeBetween(
            column=TOTAL_VS_LINES, min_value=0, max_value=CENT, strict_max=True,
            description="total_amount equals the sum of quantity × unit_price of its lines within a cent",
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=parameter(MIN_TRANSACTIONS), max_value=parameter(MAX_TRANSACTIONS),
            description="the day's transactions are within the band of the trailing daily average (never none)",
        ),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column=HOUR_OF_DAY, value_set=parameter(REQUIRED_HOURS),
            description="every hour of the day (UTC) has transactions",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column=TRANSACTIONS_IN_HOUR, min_value=parameter(MIN_HOUR_TRANSACTIONS),
            description="every hour holds at least the minimum share of the day's hourly average "
                        "(the unexpected rows are the transactions of thinner hours)",
        ),
    ])


def raw_product_views() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=RAW_PRODUCT_VIEWS, expectations=_event_basics(ProductView, "event_id") + [
        gxe.ExpectColumnValuesToNotBeNull(column="product_id"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ])


def raw_cart_events() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=RAW_CART_EVENTS, expectations=_event_basics(CartEvent, "event_id") + [
        gxe.ExpectColumnValuesToBeBetween(column="unit_price", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="cart_value", min_value=0),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ])


def fact_sales() -> gx.ExpectationSuite:
    keys = list(FACT_DIMENSIONS)
    return gx.ExpectationSuite(name=FACT_SALES, expectations=[
        gxe.ExpectTableRowCountToEqual(
            value=parameter(RAW_LINE_COUNT), description="one fact row per line item of the raw day"),
        *(gxe.ExpectColumnValuesToNotBeNull(column=key) for key in keys),
        *(gxe.ExpectColumnValuesToBeNull(
            column=orphan_column(key), description=f"every {key} is in {FACT_DIMENSIONS[key]} (no orphan keys)")
          for key in keys),
    ])


def customer_rfm() -> gx.ExpectationSuite:
    scores = ("r_score", "f_score", "m_score", "fm_score")
    return gx.ExpectationSuite(name=CUSTOMER_RFM, expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        *(gxe.ExpectColumnValuesToNotBeNull(column=score) for score in scores),
        *(gxe.ExpectColumnValuesToBeBetween(column=score, min_value=1, max_value=QUINTILES) for score in scores),
        gxe.ExpectColumnValuesToNotBeNull(column="rfm_segment"),
        gxe.ExpectColumnValuesToBeInSet(column="rfm_segment", value_set=list(SEGMENTS)),
    ])


RAW_DAY_SUITES = (raw_transactions, raw_product_views, raw_cart_events)
OUTPUT_SUITES = (fact_sales, customer_rfm)


def suite_document(suite: gx.ExpectationSuite) -> dict:
    """The suite as GX serializes it, without the ids a context assigns."""
    document = suite.to_json_dict()
    document.pop("id", None)
    for expectation in document["expectations"]:
        expectation.pop("id", None)
    return document


def export_suites(directory: Path = EXPORT_DIR) -> list[Path]:
    """Write every suite as ``<name>.json`` (GX's own format) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for build in RAW_DAY_SUITES + OUTPUT_SUITES:
        suite = build()
        path = directory / f"{suite.name}.json"
        path.write_text(json.dumps(suite_document(suite), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
