"""Sales metrics transforms: tumbling windows, category/country totals, the watermark's late rows."""

from decimal import Decimal

from spark_jobs.streaming.sales_metrics import ALL_CATEGORIES, minute_sales, sales_facts, split_late
from tests.streaming_fixtures import TRANSACTION, at, transaction

PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"


def windows(spark, rows, watermark=None):
    """The batch's window rows as the sink sees them, each with ``late``."""
    on_time, late = split_late(minute_sales(sales_facts(spark.createDataFrame(rows, TRANSACTION)).toArrow()), watermark)
    return [{**row, "late": False} for row in on_time.to_pylist()] + [{**row, "late": True} for row in late.to_pylist()]


def test_totals_by_category_and_country_with_all_categories_row(spark):
    mixed = transaction(at(10, 0, 5), lines=[("P1", PHONES, 2, 10.10), ("P2", BOOKS, 1, 5.00)])
    phones = transaction(at(10, 0, 40), user="U2", lines=[("P1", PHONES, 1, 10.10)], country="UK")
    result = windows(spark, [mixed, phones])

    rows = {(r["kind"], r["category"], r["country"], r["product_id"]): r for r in result}
    usa_all = rows[("category", ALL_CATEGORIES, "USA", "")]
    assert (usa_all["revenue"], usa_all["transactions"], usa_all["units"]) == (Decimal("25.20"), 1, 3)
    assert rows[("category", PHONES, "USA", "")]["revenue"] == Decimal("20.20")
    assert rows[("category", PHONES, "UK", "")]["transactions"] == 1
    # products are summed over countries
    p1 = rows[("product", PHONES, "", "P1")]
    assert (p1["units"], p1["revenue"], p1["transactions"]) == (3, Decimal("30.30"), 2)
    assert {r["window_start"] for r in result} == {at(10)}
    assert not any(r["late"] for r in result)
    assert max(r["max_event_time"] for r in result) == at(10, 0, 40)


def test_rows_of_windows_closed_by_the_watermark_are_marked_late(spark):
    def sale(time, user):
        return transaction(time, user=user, lines=[("P1", PHONES, 1, 10.0)])

    # watermark 10:01:00: the 10:00 window has ended (late), the 10:01 window is still open
    result = windows(spark, [sale(at(10, 0, 59), "A"), sale(at(10, 1, 0), "B"), sale(at(10, 1, 30), "C")],
                     watermark=at(10, 1))
    all_rows = {(r["window_start"].minute, r["late"]): r["transactions"] for r in result
                if r["kind"] == "category" and r["category"] == ALL_CATEGORIES}
    assert all_rows == {(0, True): 1, (1, False): 2}


def test_a_product_sold_under_two_categories_in_one_window_is_one_product_row(spark):
    """Each line names its category: two names for one product must not make two rows of one key."""
    result = windows(spark, [transaction(at(10, 0, 1), lines=[("P1", PHONES, 1, 10.0)]),
                             transaction(at(10, 0, 2), user="U2", lines=[("P1", BOOKS, 2, 10.0)])])
    products = [r for r in result if r["kind"] == "product"]
    assert len(products) == 1 and (products[0]["units"], products[0]["transactions"]) == (3, 2)
    assert products[0]["category"] in (PHONES, BOOKS)
