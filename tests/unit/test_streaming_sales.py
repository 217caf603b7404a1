"""Sales metrics transforms: tumbling windows, category/country totals, watermark and late data."""

from decimal import Decimal


from spark_jobs.streaming.sales_metrics import ALL_CATEGORIES, minute_sales, sales_facts
from tests.streaming_fixtures import TRANSACTION, at, transaction
from tests.streaming_harness import run_stream

PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"


def windows(spark, tmp_path, batches, watermark="2 minutes"):
    def build(transactions):
        return minute_sales(sales_facts(transactions.withWatermark("event_time", watermark)))

    return run_stream(spark, tmp_path, {"transactions": (TRANSACTION, batches)}, build)


def test_totals_by_category_and_country_with_all_categories_row(spark, tmp_path):
    mixed = transaction(at(10, 0, 5), lines=[("P1", PHONES, 2, 10.10), ("P2", BOOKS, 1, 5.00)])
    phones = transaction(at(10, 0, 40), user="U2", lines=[("P1", PHONES, 1, 10.10)], country="UK")
    result = windows(spark, tmp_path, [[mixed, phones]])

    rows = {(r["kind"], r["category"], r["country"], r["product_id"]): r for r in result.rows}
    usa_all = rows[("category", ALL_CATEGORIES, "USA", "")]
    assert (usa_all["revenue"], usa_all["transactions"], usa_all["units"]) == (Decimal("25.20"), 1, 3)
    assert usa_all["avg_order_value"] == Decimal("25.20")
    assert rows[("category", PHONES, "USA", "")]["revenue"] == Decimal("20.20")
    assert rows[("category", PHONES, "UK", "")]["transactions"] == 1
    # products are summed over countries
    p1 = rows[("product", PHONES, "", "P1")]
    assert (p1["units"], p1["revenue"], p1["transactions"]) == (3, Decimal("30.30"), 2)
    assert {r["window_start"] for r in result.rows} == {at(10).replace(tzinfo=None)}


def test_late_data_within_the_watermark_updates_its_window_later_data_is_counted(spark, tmp_path):
    def sale(time, user):
        return transaction(time, user=user, lines=[("P1", PHONES, 1, 10.0)])

    # the watermark (2 minutes behind the latest event) moves once per micro-batch; Spark turns
    # late rows away by the previous batch's watermark
    result = windows(spark, tmp_path, [
        [sale(at(10, 0, 30), "A")],
        [sale(at(10, 2, 0), "B")],
        [sale(at(10, 0, 50), "C")],  # late, but its window (10:00-10:01) is still open: updated
        [sale(at(10, 6, 0), "E")],
        [sale(at(10, 7, 0), "F")],
        [sale(at(10, 0, 40), "D")],  # window 10:00 closed long ago: dropped, and counted
    ])
    minute_ten = [r for r in result.rows if r["kind"] == "category" and r["category"] == ALL_CATEGORIES
                  and r["window_start"] == at(10).replace(tzinfo=None)]
    assert [r["transactions"] for r in minute_ten] == [1, 2]
    # Spark counts the aggregation's input rows: D's category row, its ALL row and its product row
    assert result.late_rows_dropped == 3


def test_update_mode_rewrites_a_window_with_its_full_totals(spark, tmp_path):
    result = windows(spark, tmp_path, [
        [transaction(at(10, 0, 1), user="A", lines=[("P1", PHONES, 1, 10.0)])],
        [transaction(at(10, 0, 2), user="B", lines=[("P1", PHONES, 2, 10.0)])],
    ])
    def usa_all(batch):
        return next(r for r in batch if r["kind"] == "category" and r["category"] == ALL_CATEGORIES)

    assert usa_all(result.batches[0])["revenue"] == Decimal("10.00")
    second = usa_all(result.batches[1])
    assert (second["revenue"], second["transactions"], second["units"]) == (Decimal("30.00"), 2, 3)
