"""RFM against a hand-computed fixture of ten customers, and the R × FM segment grid."""

from datetime import timedelta
from decimal import Decimal

from pyspark.sql import functions as F

from globalmart.settings import Settings
from globalmart.warehouse.rfm import SEGMENTS, customer_rfm, rfm_segment
from spark_jobs.streaming.raw_archiver import lake_rows
from tests.streaming_fixtures import DAY, TRANSACTION, at, transaction

ANALYSIS_DATE = DAY.date()  # 2026-11-20

# user → (days before the analysis date of each purchase, amount of each purchase)
PURCHASES = {
    "U01": ([300], 10.00),
    "U02": ([150], 19.99),
    "U03": ([200, 210, 220, 230, 240, 364], 20.00),  # 364 days back: the window's first day
    "U04": ([120, 127], 15.00),
    "U05": ([0, 7, 14], 20.00),
    "U06": ([2, 9, 16, 23, 30, 37, 44], 30.01),
    "U07": ([30, 37, 44], 15.00),
    "U08": ([10, 17, 24, 31, 38], 50.00),
    "U09": ([60, 67, 74, 81], 20.00),
    "U10": ([45, 52, 59, 66, 73], 30.00),
}
# computed by hand: quintiles of ten customers are pairs. R orders recency descending
# (U01 300, U03 200 | U02 150, U04 120 | U09 60, U10 45 | U07 30, U08 10 | U06 2, U05 0);
# F orders frequency (U01 1, U02 1 | U04 2, U05 3 | U07 3, U09 4 | U08 5, U10 5 | U03 6, U06 7),
# where U05 and U07 tie at 3 and the user id puts U05 first; M orders monetary
# (10.00, 19.99 | 30.00, 45.00 | 60.00, 80.00 | 120.00, 150.00 | 210.07, 250.00).
# fm = ceil((f + m) / 2).
EXPECTED = {
    #       recency, frequency, monetary,          r, f, m, fm, segment
    "U01": (300, 1, Decimal("10.00"), 1, 1, 1, 1, "Lost"),
    "U02": (150, 1, Decimal("19.99"), 2, 1, 1, 1, "About to Sleep"),
    "U03": (200, 6, Decimal("120.00"), 1, 5, 4, 5, "Cannot Lose Them"),
    "U04": (120, 2, Decimal("30.00"), 2, 2, 2, 2, "Need Attention"),
    "U05": (0, 3, Decimal("60.00"), 5, 2, 3, 3, "Loyal Customers"),
    "U06": (2, 7, Decimal("210.07"), 5, 5, 5, 5, "Champions"),
    "U07": (30, 3, Decimal("45.00"), 4, 3, 2, 3, "Potential Loyalists"),
    "U08": (10, 5, Decimal("250.00"), 4, 4, 5, 5, "Champions"),
    "U09": (60, 4, Decimal("80.00"), 3, 3, 3, 3, "Potential Loyalists"),
    "U10": (45, 5, Decimal("150.00"), 3, 4, 4, 4, "Loyal Customers"),
}


def purchases(spark):
    rows = [transaction(at(12) - timedelta(days=days_back), user=user, lines=[("P1", "Books > Fiction", 1, amount)])
            for user, (days, amount) in PURCHASES.items() for days_back in days]
    # outside the window: the day before its first day, and the day after the analysis date
    rows.append(transaction(at(12) - timedelta(days=365), user="U01", lines=[("P1", "Books > Fiction", 1, 1000.0)]))
    rows.append(transaction(at(12) + timedelta(days=1), user="U05", lines=[("P1", "Books > Fiction", 1, 1000.0)]))
    rows.append(transaction(at(12) + timedelta(days=1), user="U99", lines=[("P1", "Books > Fiction", 1, 1000.0)]))
    return lake_rows(spark.createDataFrame(rows, TRANSACTION))


def test_rfm_scores_and_segments_match_the_hand_computed_fixture(spark):
    lookback = Settings().warehouse.rfm_lookback_days
    result = customer_rfm(purchases(spark), ANALYSIS_DATE, lookback).collect()

    got = {r.user_id: (r.recency, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score, r.fm_score, r.rfm_segment)
           for r in result}
    assert got == EXPECTED
    assert {r.analysis_date for r in result} == {ANALYSIS_DATE}
    assert {r.user_id: r.last_purchase_date for r in result}["U03"] == ANALYSIS_DATE - timedelta(days=200)


def test_rfm_is_deterministic(spark):
    transactions = purchases(spark)
    first, second = (customer_rfm(transactions, ANALYSIS_DATE, 365).collect() for _ in range(2))
    assert first == second


def test_shorter_lookback_drops_older_purchases(spark):
    result = {r.user_id: r for r in customer_rfm(purchases(spark), ANALYSIS_DATE, 100).collect()}
    assert set(result) == {"U05", "U06", "U07", "U08", "U09", "U10"}
    assert (result["U10"].frequency, result["U10"].monetary) == (5, Decimal("150.00"))


def test_segment_grid_by_r_and_fm_score(spark):
    expected = {
        (5, 1): "New Customers", (5, 2): "Potential Loyalists", (5, 3): "Loyal Customers", (5, 4): "Champions",
        (5, 5): "Champions",
        (4, 1): "Promising", (4, 2): "Potential Loyalists", (4, 3): "Potential Loyalists", (4, 4): "Loyal Customers",
        (4, 5): "Champions",
        (3, 1): "Promising", (3, 2): "Need Attention", (3, 3): "Potential Loyalists", (3, 4): "Loyal Customers",
        (3, 5): "Loyal Customers",
        (2, 1): "About to Sleep", (2, 2): "Need Attention", (2, 3): "Need Attention", (2, 4): "At Risk",
        (2, 5): "At Risk",
        (1, 1): "Lost", (1, 2): "Hibernating", (1, 3): "At Risk", (1, 4): "Cannot Lose Them",
        (1, 5): "Cannot Lose Them",
    }
    scores = spark.createDataFrame(list(expected), "r int, fm int")
    segments = scores.select("r", "fm", rfm_segment(F.col("r"), F.col("fm")).alias("segment")).collect()
    assert {(row.r, row.fm): row.segment for row in segments} == expected
    assert set(expected.values()) == set(SEGMENTS) and len(SEGMENTS) == 11
