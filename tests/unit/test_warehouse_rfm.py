"""RFM against hand-computed fixtures (one with a single tie, one with heavy ties, the
degenerate days), property tests of the scoring, and the R × FM segment grid."""

from datetime import timedelta
from decimal import Decimal
from math import ceil

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from globalmart.settings import Settings
from globalmart.warehouse.rfm import (
    QUINTILES, SEGMENT_GRID, SEGMENTS, customer_rfm, cut_points, rfm_scores, rfm_segment,
)
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
# computed by hand: a value's place is (customers with a worse value + half its tie group) / 10,
# its score 1 + the fifths it reaches. Without ties the scores are pairs, as quintiles: R orders
# recency descending (U01 300, U03 200 | U02 150, U04 120 | U09 60, U10 45 | U07 30, U08 10 |
# U06 2, U05 0) and M orders monetary (10.00, 19.99 | 30.00, 45.00 | 60.00, 80.00 |
# 120.00, 150.00 | 210.07, 250.00). F: frequency 1 (U01, U02) sits at 0.1 → 1, 2 (U04) at 0.25 → 2,
# 3 (U05 and U07, tied) at 0.4 → 3 both, 4 (U09) at 0.55 → 3, 5 (U08, U10) at 0.7 → 4,
# 6 and 7 at 0.85, 0.95 → 5. fm = ceil((f + m) / 2).
EXPECTED = {
    #       recency, frequency, monetary,          r, f, m, fm, segment
    "U01": (300, 1, Decimal("10.00"), 1, 1, 1, 1, "Lost"),
    "U02": (150, 1, Decimal("19.99"), 2, 1, 1, 1, "About to Sleep"),
    "U03": (200, 6, Decimal("120.00"), 1, 5, 4, 5, "Cannot Lose Them"),
    "U04": (120, 2, Decimal("30.00"), 2, 2, 2, 2, "Need Attention"),
    "U05": (0, 3, Decimal("60.00"), 5, 3, 3, 3, "Loyal Customers"),
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


CUSTOMERS_SCHEMA = "user_id string, recency int, frequency int, monetary decimal(18,2)"

# heavy ties: six of ten customers bought on the analysis date, seven bought once, four spent 20.00
#        recency, frequency, monetary
HEAVY_TIES = {
    "C01": (0, 1, "20.00"), "C02": (0, 1, "20.00"), "C03": (0, 1, "20.00"), "C04": (0, 1, "35.50"),
    "C05": (0, 2, "35.50"), "C06": (0, 5, "120.00"), "C07": (3, 1, "20.00"), "C08": (3, 2, "80.00"),
    "C09": (10, 1, "35.50"), "C10": (40, 1, "50.00"),
}
# computed by hand, place = (worse + tied / 2) / 10, score = 1 + the fifths (0.2, 0.4, 0.6, 0.8) it reaches:
# R: recency 40 at 0.05 → 1, 10 at 0.15 → 1, 3 (×2) at 0.3 → 2, 0 (×6) at 0.7 → 4
#    (no R 3 nor 5: the six who bought on the day are one group);
# F: frequency 1 (×7) at 0.35 → 2, 2 (×2) at 0.8 → 5 (on the boundary: the upper score), 5 at 0.95 → 5;
# M: 20.00 (×4) at 0.2 → 2, 35.50 (×3) at 0.55 → 3, 50.00 at 0.75 → 4, 80.00 at 0.85 → 5,
#    120.00 at 0.95 → 5.
HEAVY_TIES_EXPECTED = {
    #      r, f, m, fm, segment
    "C01": (4, 2, 2, 2, "Potential Loyalists"),
    "C02": (4, 2, 2, 2, "Potential Loyalists"),
    "C03": (4, 2, 2, 2, "Potential Loyalists"),
    "C04": (4, 2, 3, 3, "Potential Loyalists"),
    "C05": (4, 5, 3, 4, "Loyal Customers"),
    "C06": (4, 5, 5, 5, "Champions"),
    "C07": (2, 2, 2, 2, "Need Attention"),
    "C08": (2, 5, 5, 5, "At Risk"),
    "C09": (1, 2, 3, 3, "At Risk"),
    "C10": (1, 2, 4, 3, "At Risk"),
}
# each score's thresholds 2..5 (recency negated: higher is better); None: no value reaches that fifth
HEAVY_TIES_CUT_POINTS = {
    "r_score": ("-3.00", "0.00", "0.00", None),
    "f_score": ("1.00", "2.00", "2.00", "2.00"),
    "m_score": ("20.00", "35.50", "50.00", "80.00"),
}


def customers_frame(spark, customers: dict[str, tuple[int, int, str]]):
    rows = [(user, recency, frequency, Decimal(monetary)) for user, (recency, frequency, monetary) in customers.items()]
    return spark.createDataFrame(rows, CUSTOMERS_SCHEMA)


def scores_by_user(scored) -> dict[str, tuple[int, int, int, int, str]]:
    return {r.user_id: (r.r_score, r.f_score, r.m_score, r.fm_score, r.rfm_segment) for r in scored.collect()}


def test_heavy_ties_share_scores_as_computed_by_hand(spark):
    customers = customers_frame(spark, HEAVY_TIES)
    assert scores_by_user(rfm_scores(customers)) == HEAVY_TIES_EXPECTED

    cuts = cut_points(customers).first()
    got = {score: tuple(None if cuts[f"{score}_cut_{k}"] is None else str(cuts[f"{score}_cut_{k}"])
                        for k in range(2, QUINTILES + 1)) for score in HEAVY_TIES_CUT_POINTS}
    assert got == HEAVY_TIES_CUT_POINTS


def test_degenerate_day_everyone_bought_today_and_once_scores_3_on_r_and_f(spark):
    # a first day of data: the same recency and frequency for all, so only M tells them apart
    amounts = ("5.00", "10.00", "15.00", "20.00", "25.00")
    scored = scores_by_user(rfm_scores(customers_frame(
        spark, {f"U{i}": (0, 1, amount) for i, amount in enumerate(amounts)})))
    assert scored == {
        "U0": (3, 3, 1, 2, "Need Attention"),
        "U1": (3, 3, 2, 3, "Potential Loyalists"),
        "U2": (3, 3, 3, 3, "Potential Loyalists"),
        "U3": (3, 3, 4, 4, "Loyal Customers"),
        "U4": (3, 3, 5, 4, "Loyal Customers"),
    }


def test_degenerate_day_identical_customers_score_3_on_everything(spark):
    scored = scores_by_user(rfm_scores(customers_frame(spark, {f"U{i}": (0, 1, "9.99") for i in range(7)})))
    assert set(scored.values()) == {(3, 3, 3, 3, "Potential Loyalists")}
    single = scores_by_user(rfm_scores(customers_frame(spark, {"U1": (12, 3, "120.00")})))
    assert single == {"U1": (3, 3, 3, 3, "Potential Loyalists")}


def expected_score(values: list, value) -> int:
    """The documented rule, by hand: 1 + the fifths reached by (worse + tied / 2) / customers."""
    worse, tied = sum(v < value for v in values), values.count(value)
    return QUINTILES * (2 * worse + tied) // (2 * len(values)) + 1


@st.composite
def customer_days(draw):
    """Customers from small ranges, so that most values tie, and a relabelling of their ids."""
    customers = draw(st.lists(st.tuples(
        st.integers(0, 8),  # recency
        st.integers(1, 4),  # frequency
        st.integers(1, 12).map(lambda quarters: Decimal(quarters * 625) / 100),  # monetary: 6.25 … 75.00
    ), min_size=1, max_size=40))
    relabelled = draw(st.permutations(range(len(customers))))
    return customers, relabelled


@hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customer_days())
def test_scores_depend_only_on_the_values(spark, day):
    """Against the rule computed by hand, then its properties: equal values share scores and
    segment, a better value never scores lower, and relabelling the user ids (and reordering
    the rows) changes no customer's scores."""
    customers, relabelled = day
    rows = [(f"U{i:02d}", *values) for i, values in enumerate(customers)]
    scored = scores_by_user(rfm_scores(spark.createDataFrame(rows, CUSTOMERS_SCHEMA)))
    values = {user: (recency, frequency, monetary) for user, recency, frequency, monetary in rows}

    signed_recencies = [-recency for recency, _, _ in customers]
    frequencies = [frequency for _, frequency, _ in customers]
    amounts = [monetary for _, _, monetary in customers]
    for user, (recency, frequency, monetary) in values.items():
        r, f, m, fm, segment = scored[user]
        assert (r, f, m) == (expected_score(signed_recencies, -recency), expected_score(frequencies, frequency),
                             expected_score(amounts, monetary))
        assert fm == ceil((f + m) / 2) and segment == SEGMENT_GRID[r][fm - 1]

    for a, (recency_a, frequency_a, monetary_a) in values.items():
        for b, (recency_b, frequency_b, monetary_b) in values.items():
            if values[a] == values[b]:
                assert scored[a] == scored[b]
            if recency_a <= recency_b:
                assert scored[a][0] >= scored[b][0]
            if frequency_a <= frequency_b:
                assert scored[a][1] <= scored[b][1]
            if monetary_a <= monetary_b:
                assert scored[a][2] <= scored[b][2]

    relabelled_rows = [(f"V{relabelled[i]:02d}", *customers[i]) for i in reversed(range(len(customers)))]
    rescored = scores_by_user(rfm_scores(spark.createDataFrame(relabelled_rows, CUSTOMERS_SCHEMA)))
    assert {f"U{i:02d}": rescored[f"V{relabelled[i]:02d}"] for i in range(len(customers))} == scored
