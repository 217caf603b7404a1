"""Sales trends: totals by country × category with ALL rows, growth and moving averages by hand."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from globalmart.warehouse.trends import sales_trends
from spark_jobs.streaming.raw_archiver import lake_rows
from tests.streaming_fixtures import TRANSACTION, transaction

PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"
WINDOWS = {"daily": 3, "weekly": 2, "monthly": 2}


def noon(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def trends(spark):
    sales = [
        transaction(noon(10, 30), user="U1", lines=[("P1", PHONES, 1, 100.00)]),  # Friday
        transaction(noon(11, 2), user="U2", lines=[("P1", PHONES, 2, 50.00), ("P2", BOOKS, 1, 10.00)]),  # Monday
        transaction(noon(11, 3), user="U3", lines=[("P2", BOOKS, 1, 20.00)], country="UK"),
        transaction(noon(11, 3), user="U4", lines=[("P1", PHONES, 1, 30.00)]),
        transaction(noon(11, 4), user="U5", lines=[("P1", PHONES, 1, 40.00)]),
        transaction(noon(11, 9), user="U6", lines=[("P2", BOOKS, 2, 5.50)]),  # Monday
    ]
    rows = sales_trends(lake_rows(spark.createDataFrame(sales, TRANSACTION)), WINDOWS).collect()
    return {(r.granularity, r.period_start, r.country, r.category): r for r in rows}


def series(trends, granularity, country="ALL", category="ALL"):
    return [row for key, row in sorted(trends.items()) if key[0] == granularity and key[2:] == (country, category)]


def test_every_series_has_every_period_and_keys_are_unique(trends):
    present = {"USA": {PHONES, BOOKS, "ALL"}, "UK": {BOOKS, "ALL"}, "ALL": {PHONES, BOOKS, "ALL"}}
    pairs = {(country, category) for country, categories in present.items() for category in categories}
    for granularity, periods in (("daily", 11), ("weekly", 3), ("monthly", 2)):
        keys = [key for key in trends if key[0] == granularity]
        assert {key[2:] for key in keys} == pairs
        assert len(keys) == periods * len(pairs)


def test_daily_totals_growth_and_three_day_moving_average(trends):
    days = series(trends, "daily")
    assert days[0].period_start == date(2026, 10, 30) and days[-1].period_start == date(2026, 11, 9)
    assert [d.revenue for d in days] == [Decimal(v) for v in ("100.00", "0.00", "0.00", "110.00", "50.00", "40.00",
                                                               "0.00", "0.00", "0.00", "0.00", "11.00")]
    # a transaction with two categories counts once in ALL
    assert [d.transactions for d in days] == [1, 0, 0, 1, 2, 1, 0, 0, 0, 0, 1]
    assert [d.revenue_growth for d in days] == [None, -1.0, None, None, -0.5455, -0.2, -1.0, None, None, None, None]
    assert [d.transactions_growth for d in days][3:6] == [None, 1.0, -0.5]
    assert [d.revenue_moving_avg for d in days] == [None, None] + [Decimal(v) for v in (
        "33.33", "36.67", "53.33", "66.67", "30.00", "13.33", "0.00", "0.00", "3.67")]
    assert days[5].transactions_moving_avg == 1.33
    assert (days[4].avg_order_value, days[1].avg_order_value) == (Decimal("25.00"), None)
    assert (days[4].period_end, days[4].units) == (date(2026, 11, 3), 2)


def test_category_and_country_series(trends):
    usa_phones = {r.period_start: r for r in series(trends, "daily", "USA", PHONES)}
    assert (usa_phones[date(2026, 11, 2)].revenue, usa_phones[date(2026, 11, 2)].units) == (Decimal("100.00"), 2)
    all_books = {r.period_start: r for r in series(trends, "daily", "ALL", BOOKS)}
    assert [(all_books[date(2026, 11, d)].revenue, all_books[date(2026, 11, d)].transactions) for d in (2, 3)] == [
        (Decimal("10.00"), 1), (Decimal("20.00"), 1)]
    uk = {r.period_start: r for r in series(trends, "daily", "UK")}
    assert (uk[date(2026, 11, 3)].revenue, uk[date(2026, 11, 4)].revenue_growth) == (Decimal("20.00"), -1.0)
    usa = {r.period_start: r for r in series(trends, "daily", "USA")}
    assert usa[date(2026, 11, 3)].revenue == Decimal("30.00")


def test_weekly_and_monthly_periods(trends):
    weeks = series(trends, "weekly")
    assert [(w.period_start, w.period_end) for w in weeks] == [
        (date(2026, 10, 26), date(2026, 11, 1)), (date(2026, 11, 2), date(2026, 11, 8)),
        (date(2026, 11, 9), date(2026, 11, 15))]
    assert [(w.revenue, w.transactions, w.avg_order_value) for w in weeks] == [
        (Decimal("100.00"), 1, Decimal("100.00")), (Decimal("200.00"), 4, Decimal("50.00")),
        (Decimal("11.00"), 1, Decimal("11.00"))]
    assert [w.revenue_growth for w in weeks] == [None, 1.0, -0.945]
    assert [w.revenue_moving_avg for w in weeks] == [None, Decimal("150.00"), Decimal("105.50")]

    months = series(trends, "monthly")
    assert [(m.period_start, m.period_end, m.revenue, m.transactions) for m in months] == [
        (date(2026, 10, 1), date(2026, 10, 31), Decimal("100.00"), 1),
        (date(2026, 11, 1), date(2026, 11, 30), Decimal("211.00"), 5)]
    assert [(m.revenue_growth, m.transactions_growth, m.revenue_moving_avg) for m in months] == [
        (None, None, None), (1.11, 4.0, Decimal("155.50"))]
