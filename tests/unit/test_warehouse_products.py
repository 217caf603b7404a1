"""Product performance of a day: sales, views, conversion, cart adds, rank and score by hand."""

from datetime import timedelta
from decimal import Decimal

import pytest

from globalmart.settings import PerformanceWeights
from globalmart.warehouse.products import product_performance
from spark_jobs.streaming.raw_archiver import lake_rows
from tests.streaming_fixtures import CART, DAY, TRANSACTION, VIEW, at, cart, transaction, view

PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"


def day_events(spark):
    """P1 and P3 are phones, P2 and P4 books. P1 sells to U1 (who viewed it) and U2 (who did
    not), P2 to U1 (who viewed it); P3 is only viewed and carted, P4 only carted."""
    sales = [
        transaction(at(10), user="U1", lines=[("P1", PHONES, 2, 100.00), ("P2", BOOKS, 1, 5.00)]),
        transaction(at(11), user="U2", lines=[("P1", PHONES, 1, 90.00)]),
        transaction(at(11) - timedelta(days=1), user="U9", lines=[("P1", PHONES, 5, 100.00)]),  # another day
    ]
    views = [
        view(at(9), user="U1", product="P1"), view(at(9, 5), user="U1", product="P1"),
        view(at(9, 10), user="U1", product="P2", category=BOOKS),
        view(at(12), user="U3", product="P1"),
        view(at(13), user="U4", product="P3"),
    ]
    carts = [
        cart(at(9, 20), "add", user="U1", product="P1", quantity=2),
        cart(at(9, 21), "add", user="U1", product="P2", category=BOOKS, price=5.0),
        cart(at(9, 22), "remove", user="U1", product="P1"),
        cart(at(9, 30), "checkout", user="U1", quantity=3, cart_value=205.0),
        cart(at(10, 50), "add", user="U2", product="P1", price=90.0),
        cart(at(13, 5), "add", user="U4", product="P3"),
        cart(at(14), "add", user="U5", product="P4", category=BOOKS, price=12.0),
    ]
    return (lake_rows(spark.createDataFrame(sales, TRANSACTION)), lake_rows(spark.createDataFrame(views, VIEW)),
            lake_rows(spark.createDataFrame(carts, CART)))


def test_product_metrics_rank_and_score(spark):
    performance = product_performance(*day_events(spark), DAY.date(), PerformanceWeights())
    rows = {r.product_id: r for r in performance.collect()}

    assert set(rows) == {"P1", "P2", "P3", "P4"}
    p1, p2, p3, p4 = (rows[p] for p in ("P1", "P2", "P3", "P4"))
    assert (p1.date, p1.date_key, p1.category, p1.department) == (DAY.date(), 20261120, PHONES, "Electronics")
    assert (p1.units_sold, p1.total_revenue, p1.orders, p1.avg_price) == (3, Decimal("290.00"), 2, Decimal("96.67"))
    # P1 viewed in the sessions of U1 (twice) and U3; U1 bought it, U2 bought without viewing
    assert (p1.views, p1.view_sessions, p1.converted_sessions, p1.conversion_rate, p1.cart_adds) == (3, 2, 1, 0.5, 2)
    assert (p2.units_sold, p2.total_revenue, p2.views, p2.conversion_rate, p2.cart_adds) == (
        1, Decimal("5.00"), 1, 1.0, 1)
    assert (p3.units_sold, p3.total_revenue, p3.avg_price, p3.views, p3.conversion_rate, p3.cart_adds) == (
        0, Decimal("0.00"), None, 1, 0.0, 1)
    assert (p4.views, p4.view_sessions, p4.conversion_rate, p4.cart_adds, p4.department) == (0, 0, None, 1, "Books")

    assert {p: rows[p].rank_in_category for p in rows} == {"P1": 1, "P3": 2, "P2": 1, "P4": 2}
    # percentile ranks among the four (revenue, units, conversion, views, cart adds), weights .4 .2 .2 .1 .1:
    # P1: 1, 1, 2/3, 1, 1 → 93.33;  P2: 2/3, 2/3, 1, 1/3, 0 → 63.33;  P3: 0, 0, 0, 1/3, 0 → 3.33;  P4: 0
    assert {p: rows[p].performance_score for p in rows} == {"P1": 93.33, "P2": 63.33, "P3": 3.33, "P4": 0.0}


@pytest.mark.parametrize("weights, expected", [
    (PerformanceWeights(revenue=2, units=0, conversion=0, views=0, cart_adds=0),
     {"P1": 100.0, "P2": 66.67, "P3": 0.0, "P4": 0.0}),
    (PerformanceWeights(revenue=0, units=0, conversion=0, views=1, cart_adds=1),
     {"P1": 100.0, "P2": 16.67, "P3": 16.67, "P4": 0.0}),
])
def test_score_weights_are_relative(spark, weights, expected):
    scores = product_performance(*day_events(spark), DAY.date(), weights).select("product_id", "performance_score")
    assert dict(scores.collect()) == expected
