"""Star schema transforms: line-item facts with exact money, and the dimensions."""

from datetime import date, timedelta
from decimal import Decimal

from pyspark.sql import functions as F

from globalmart.settings import Settings
from globalmart.warehouse.holiday_calendar import public_holidays
from globalmart.warehouse.rfm import customer_figures, customer_rfm, rfm_customers, window_customers
from globalmart.warehouse.star import (
    dim_customer,
    dim_date,
    dim_geography,
    dim_payment_method,
    dim_product,
    fact_sales,
    with_customer_registry,
    with_product_brands,
)
from spark_jobs.streaming.raw_archiver import lake_rows
from tests.streaming_fixtures import TRANSACTION, at, transaction

PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"
SHOP = Settings().catalog.model_copy(update={"users": 1_000, "products": 100})  # the registry's catalog


def lake(spark, rows):
    return lake_rows(spark.createDataFrame(rows, TRANSACTION))


def test_fact_sales_has_one_row_per_line_with_exact_revenue(spark):
    basket = transaction(at(10), user="U1", tx_id="T1",
                         lines=[("P1", PHONES, 3, 19.99), ("P2", BOOKS, 1, 0.10), ("P1", PHONES, 2, 1234.56)])
    single = {**transaction(at(23, 59, 59), user="U2", tx_id="T2", lines=[("P3", BOOKS, 7, 0.07)], country="UK"),
              "payment_method": "credit_card"}
    facts = fact_sales(lake(spark, [basket, single]))

    rows = facts.orderBy("transaction_id", "line_number").collect()
    assert [(r.transaction_id, r.line_number, r.product_key, r.quantity, r.unit_price, r.revenue) for r in rows] == [
        ("T1", 1, "P1", 3, Decimal("19.99"), Decimal("59.97")),
        ("T1", 2, "P2", 1, Decimal("0.10"), Decimal("0.10")),
        ("T1", 3, "P1", 2, Decimal("1234.56"), Decimal("2469.12")),
        ("T2", 1, "P3", 7, Decimal("0.07"), Decimal("0.49")),
    ]
    assert {(r.date_key, r.customer_key, r.country, r.payment_method) for r in rows} == {
        (20261120, "U1", "USA", "paypal"), (20261120, "U2", "UK", "credit_card")}
    # the lines add up to the transaction's total to the cent, in decimals
    totals = dict(facts.groupBy("transaction_id").agg(F.sum("revenue")).collect())
    assert totals == {"T1": Decimal("2529.19"), "T2": Decimal("0.49")}
    assert totals["T1"] == Decimal(str(basket["total_amount"]))


def test_loading_the_same_day_twice_gives_identical_rows(spark):
    day = lake(spark, [transaction(at(h), user=f"U{h}", lines=[("P1", PHONES, 1, 9.99), ("P2", BOOKS, 2, 5.0)])
                       for h in range(3)])
    first, second = fact_sales(day).collect(), fact_sales(day).collect()
    assert sorted(first) == sorted(second)
    assert len({(r.transaction_id, r.line_number) for r in first}) == len(first) == 6


def test_dim_date_calendar_attributes_and_holidays(spark):
    days = dim_date(spark, date(2026, 11, 20), date(2027, 1, 4), ["USA", "UK", "Canada", "Germany", "France"])
    rows = {r.date: r for r in days.collect()}

    assert len(rows) == 46 and days.select("date_key").distinct().count() == 46
    friday, saturday = rows[date(2026, 11, 20)], rows[date(2026, 11, 21)]
    assert (friday.date_key, friday.day, friday.day_of_week, friday.weekday_name, friday.is_weekend) == (
        20261120, 20, 5, "Friday", False)
    assert (saturday.day_of_week, saturday.weekday_name, saturday.is_weekend) == (6, "Saturday", True)
    assert (friday.week, friday.week_start, friday.month, friday.month_name, friday.quarter, friday.year) == (
        47, date(2026, 11, 16), 11, "November", 4, 2026)
    assert not friday.is_holiday and friday.holidays == []
    # New Year's Day 2027 is a Friday of ISO week 53 of 2026
    new_year = rows[date(2027, 1, 1)]
    assert (new_year.week, new_year.week_start, new_year.year, new_year.quarter) == (53, date(2026, 12, 28), 2027, 1)

    thanksgiving = rows[date(2026, 11, 26)]
    assert thanksgiving.is_holiday and [tuple(h) for h in thanksgiving.holidays] == [("USA", "Thanksgiving Day")]
    boxing_day = rows[date(2026, 12, 26)]
    assert [h.country for h in boxing_day.holidays] == ["Canada", "Germany", "UK"]
    assert [h.country for h in rows[date(2026, 12, 25)].holidays] == ["Canada", "France", "Germany", "UK", "USA"]


def test_dim_date_flags_only_the_requested_countries(spark):
    days = dim_date(spark, date(2026, 12, 25), date(2026, 12, 26), ["France"])
    assert {r.date: r.is_holiday for r in days.collect()} == {date(2026, 12, 25): True, date(2026, 12, 26): False}


def test_movable_public_holidays():
    holidays = {(day, country): name for day, country, name in
                public_holidays(["USA", "UK", "Canada", "Germany", "France"], 2026, 2027)}
    # Easter Sunday 2026 is 5 April
    assert holidays[(date(2026, 4, 3), "UK")] == "Good Friday"
    assert holidays[(date(2026, 4, 6), "France")] == "Easter Monday"
    assert holidays[(date(2026, 5, 14), "Germany")] == "Ascension Day"
    assert holidays[(date(2026, 5, 25), "Germany")] == "Whit Monday"
    assert holidays[(date(2026, 5, 25), "USA")] == "Memorial Day"
    assert holidays[(date(2026, 5, 18), "Canada")] == "Victoria Day"
    assert holidays[(date(2026, 10, 12), "Canada")] == "Thanksgiving"
    assert holidays[(date(2027, 11, 25), "USA")] == "Thanksgiving Day"
    assert holidays[(date(2027, 1, 18), "USA")] == "Martin Luther King Jr. Day"
    assert (date(2026, 4, 3), "France") not in holidays
    assert public_holidays(["Atlantis"], 2026, 2026) == []


def test_dim_customer_figures_latest_country_segment_and_registry(spark):
    day = at(0).date()
    rows = [transaction(at(9) - timedelta(days=400), user="U00000001", country="UK",
                        lines=[("P1", PHONES, 1, 5.0)]),  # before the look-back window: lifetime only
            transaction(at(9) - timedelta(days=1), user="U00000001", country="UK", lines=[("P1", PHONES, 1, 10.0)]),
            transaction(at(18), user="U00000001", country="USA", lines=[("P1", PHONES, 2, 10.0)]),
            transaction(at(12), user="U2", country="France"),
            transaction(at(12) + timedelta(days=1), user="U2", country="France")]  # after the day: not counted
    transactions = lake(spark, rows)
    figures = customer_figures(transactions, day, 365)
    segments = customer_rfm(transactions, day, 365)
    assert sorted(window_customers(figures, day).collect()) == sorted(rfm_customers(transactions, day, 365).collect())
    snapshot = with_customer_registry(dim_customer(figures, segments, day), SHOP, Settings().generator)
    customers = {r.customer_key: r for r in snapshot.collect()}
    assert set(customers) == {"U00000001", "U2"}
    u1, u2 = customers["U00000001"], customers["U2"]
    assert (u1.country, u1.first_seen, u1.last_seen, u1.lifetime_orders, u1.lifetime_revenue, u1.as_of) == (
        "USA", (at(9) - timedelta(days=400)).replace(tzinfo=None), at(18).replace(tzinfo=None), 3, Decimal("35.00"), day)
    assert u1.rfm_segment == segments.where("user_id = 'U00000001'").first().rfm_segment
    assert u1.name and u1.registration_date < day  # the registry knows the catalog's users
    assert (u2.name, u2.registration_date, u2.lifetime_orders) == (None, None, 1)  # an id it does not know
    assert snapshot.columns[:3] == ["customer_key", "name", "registration_date"]


def test_dim_product_splits_department_from_category(spark):
    catalog = spark.createDataFrame(
        [("P000001", "Acme Pro Laptops", "Electronics > Laptops", "Electronics", Decimal("999.99"), 12, Decimal("4.5")),
         ("P000002", "Odd Thing", "Misc", "Misc", Decimal("1.00"), 0, None)],
        "product_id string, name string, category string, department string, price decimal(10,2), "
        "initial_stock int, rating decimal(2,1)",
    )
    rows = {r.product_key: r for r in with_product_brands(
        dim_product(catalog, date(2026, 11, 20)), SHOP, Settings().generator).collect()}
    laptop = rows["P000001"]
    assert (laptop.name, laptop.category, laptop.department, laptop.subcategory, laptop.list_price, laptop.rating) == (
        "Acme Pro Laptops", "Electronics > Laptops", "Electronics", "Laptops", Decimal("999.99"), Decimal("4.5"))
    assert (rows["P000002"].department, rows["P000002"].subcategory) == ("Misc", None)
    assert laptop.brand and laptop.as_of == date(2026, 11, 20)  # the catalog's brand of its first product
    assert rows["P000002"].brand is not None and list(rows["P000002"].asDict())[:3] == ["product_key", "name", "brand"]


def test_geography_and_payment_dimensions_follow_the_settings(spark):
    catalog = Settings().catalog
    geography = {r.country: r for r in dim_geography(spark, catalog.countries, catalog.country_utc_offsets).collect()}
    assert set(geography) == set(catalog.countries)
    assert tuple(geography["UK"]) == ("UK", "GB", "Europe", 0)
    assert tuple(dim_geography(spark, ["Atlantis"], [3]).first()) == ("Atlantis", None, None, 3)

    methods = {r.payment_method: r for r in dim_payment_method(spark, catalog.payment_methods).collect()}
    assert set(methods) == set(catalog.payment_methods)
    assert (methods["paypal"].name, methods["paypal"].kind) == ("PayPal", "digital wallet")
    assert tuple(dim_payment_method(spark, ["cash"]).first()) == ("cash", "cash", None)
