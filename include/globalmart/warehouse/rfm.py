"""RFM: customers scored on recency, frequency and monetary value, and named segments.

Over the look-back window (the ``lookback_days`` days ending on the analysis date, inclusive):

- recency: days from the customer's last purchase date to the analysis date (0 = that day);
- frequency: number of transactions; monetary: the sum of their ``total_amount`` in decimals
  (one flat column rather than the nested lines keeps a year-long scan light; the raw gate
  checks each total equals its lines within a cent).

Each is scored 1–5 against the day's distribution of that value over the customers, higher
is better (more recent, more frequent, more spent = 5). Customers are ranked by the value, and
a value's place is the middle of its tie group: the share of customers with a worse value plus
half the share with the same value. The score is the fifth of the distribution that place falls
in (0–20 % → 1, …, 80–100 % → 5; a place exactly on a boundary takes the upper score). Put as
cut points: each score from 2 to 5 has a threshold, the worst value whose place reaches its
fifth, and a value scores 1 plus the number of thresholds it reaches. So:

- equal values always share a score, whatever the user ids or the order of the rows;
- a better value never scores lower;
- with no ties each score holds a fifth of the customers (give or take one), as quintiles do;
- with ties a tie group is not split: some scores can hold more or fewer customers, or none;
- degenerate days: when every customer has the same value (everyone bought on the analysis
  date, or everyone exactly once) that value cannot tell customers apart, its place is the
  middle of the distribution and everyone scores 3 on it (typical, neither best nor worst); the
  segment then follows from the other scores. A heavy tie at one end (nine in ten bought once)
  likewise sits at its middle (the ones who bought once score 3, the few who bought more 5).
  So with most customers buying once a year, F starts at 2 and FM at 2: the FM 1 segments (New
  Customers, Promising, About to Sleep, Lost) stay empty and those customers fall in FM 2's
  (Potential Loyalists, Need Attention, Hibernating), told apart by R and M.

The segment comes from the R score and the FM score, ``fm_score = ceil((f_score + m_score) / 2)``
(the mean rounded half up), by the widely used R × FM grid:

======  ==============  ===================  ===================  ================  ================
R \\ FM  1               2                    3                    4                 5
======  ==============  ===================  ===================  ================  ================
5       New Customers   Potential Loyalists  Loyal Customers      Champions         Champions
4       Promising       Potential Loyalists  Potential Loyalists  Loyal Customers   Champions
3       Promising       Need Attention       Potential Loyalists  Loyal Customers   Loyal Customers
2       About to Sleep  Need Attention       Need Attention       At Risk           At Risk
1       Lost            Hibernating          At Risk              Cannot Lose Them  Cannot Lose Them
======  ==============  ===================  ===================  ================  ================

Scale: one aggregation over the window's transactions (three columns read, dates pruned by
partition) into one small row per customer. The cut points need the values in order: one task
per score sorts that score's distinct values only (at most a year of recencies, a few hundred
frequencies, the distinct amounts), not the customers; the customers are then scored by
comparison with one broadcast row of thresholds, without a sort.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from globalmart.warehouse.star import MONEY, PRICE

SEGMENTS = (
    "Champions", "Loyal Customers", "Potential Loyalists", "New Customers", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Cannot Lose Them", "Hibernating", "Lost",
)
# r_score → the segment for fm_score 1..5 (the table above)
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New Customers", "Potential Loyalists", "Loyal Customers", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Champions"),
    3: ("Promising", "Need Attention", "Potential Loyalists", "Loyal Customers", "Loyal Customers"),
    2: ("About to Sleep", "Need Attention", "Need Attention", "At Risk", "At Risk"),
    1: ("Lost", "Hibernating", "At Risk", "Cannot Lose Them", "Cannot Lose Them"),
}
QUINTILES = 5
# score → the customer column it scores, and the sign that makes a higher value better
SCORED_VALUES: dict[str, tuple[str, int]] = {"r_score": ("recency", -1), "f_score": ("frequency", 1),
                                             "m_score": ("monetary", 1)}


def rfm_segment(r_score: Column, fm_score: Column) -> Column:
    """The segment of an R score and an FM score (1..5 each), by ``SEGMENT_GRID``."""
    cells = [F.lit(SEGMENT_GRID[r][fm - 1]) for r in range(1, QUINTILES + 1) for fm in range(1, QUINTILES + 1)]
    return F.element_at(F.array(*cells), (r_score - 1) * QUINTILES + fm_score)


def cut_points(customers: DataFrame) -> DataFrame:
    """One row, ``{score}_cut_{k}`` for each score of ``SCORED_VALUES`` and k = 2..5: the threshold
    of score k, the worst value (signed so that higher is better) whose place reaches the k-th
    fifth; null when no value reaches it. All three scores in one pass over the customers."""
    signed = [F.struct(F.lit(score).alias("score"), (sign * F.col(column)).cast(MONEY).alias("value"))
              for score, (column, sign) in SCORED_VALUES.items()]
    by_value = (customers.select(F.explode(F.array(*signed)).alias("scored"))
                .groupBy("scored.score", "scored.value").agg(F.count(F.lit(1)).alias("tied")))
    per_score = Window.partitionBy("score")
    # doubled so the place (worse + tied / 2) / customers compares with the fifths in integers
    doubled_place = 2 * F.sum("tied").over(per_score.orderBy("value")) - F.col("tied")
    places = by_value.select("score", "value", doubled_place.alias("doubled_place"),
                             F.sum("tied").over(per_score).alias("customers"))
    return places.agg(*(
        F.min(F.when((F.col("score") == score)
                     & (QUINTILES * F.col("doubled_place") >= 2 * (k - 1) * F.col("customers")), F.col("value")))
        .alias(f"{score}_cut_{k}")
        for score in SCORED_VALUES for k in range(2, QUINTILES + 1)
    ))


def rfm_scores(customers: DataFrame) -> DataFrame:
    """Customers (one row each, with ``recency``, ``frequency``, ``monetary``) → the same rows
    with r_score, f_score, m_score, fm_score (1..5 each) and rfm_segment (one of ``SEGMENTS``)."""
    scored = customers.crossJoin(F.broadcast(cut_points(customers)))
    scores = [
        sum((F.coalesce(sign * F.col(column) >= F.col(f"{score}_cut_{k}"), F.lit(False)).cast("int")
             for k in range(2, QUINTILES + 1)), F.lit(1)).alias(score)
        for score, (column, sign) in SCORED_VALUES.items()
    ]
    return (
        scored.select(*customers.columns, *scores)
        .withColumn("fm_score", F.ceil((F.col("f_score") + F.col("m_score")) / 2).cast("int"))
        .withColumn("rfm_segment", rfm_segment(F.col("r_score"), F.col("fm_score")))
    )


def rfm_customers(transactions: DataFrame, analysis_date: date, lookback_days: int) -> DataFrame:
    """Lake transactions (any date range; the look-back window is selected here by
    ``event_date``) → one row per customer who bought in the window: analysis_date, user_id,
    last_purchase_date, recency (days), frequency, monetary."""
    first_day = analysis_date - timedelta(days=lookback_days - 1)
    return (
        transactions.where(F.col("event_date").between(F.lit(first_day), F.lit(analysis_date)))
        .groupBy("user_id")
        .agg(
            F.max("event_date").alias("last_purchase_date"),
            F.count(F.lit(1)).cast("int").alias("frequency"),
            F.sum(F.col("total_amount").cast(PRICE)).cast(MONEY).alias("monetary"),
        )
        .select(
            F.lit(analysis_date).alias("analysis_date"), "user_id", "last_purchase_date",
            F.datediff(F.lit(analysis_date), "last_purchase_date").alias("recency"), "frequency", "monetary",
        )
    )


def customer_figures(transactions: DataFrame, analysis_date: date, lookback_days: int) -> DataFrame:
    """Lake transactions (any range; those on or before ``analysis_date`` count) → one row per
    customer, in one aggregation: user_id, country (of the latest transaction, ties broken by
    id), first_seen, last_seen (event times), lifetime_orders, lifetime_revenue (every
    transaction the lake holds up to the day), and over the look-back window last_purchase_date,
    frequency, monetary (0 and null when the customer did not buy in it).

    :func:`window_customers` of it equals :func:`rfm_customers` of the same transactions."""
    first_day = analysis_date - timedelta(days=lookback_days - 1)
    in_window = F.col("event_date") >= F.lit(first_day)
    amount = F.col("total_amount").cast(PRICE)
    latest = F.struct("event_time", "transaction_id")
    return (
        transactions.where(F.col("event_date") <= F.lit(analysis_date))
        .groupBy("user_id")
        .agg(
            F.max_by("country", latest).alias("country"),
            F.min("event_time").alias("first_seen"),
            F.max("event_time").alias("last_seen"),
            F.count(F.lit(1)).cast("int").alias("lifetime_orders"),
            F.sum(amount).cast(MONEY).alias("lifetime_revenue"),
            F.max(F.when(in_window, F.col("event_date"))).alias("last_purchase_date"),
            F.count(F.when(in_window, F.lit(1))).cast("int").alias("frequency"),
            F.sum(F.when(in_window, amount)).cast(MONEY).alias("monetary"),
        )
    )


def window_customers(figures: DataFrame, analysis_date: date) -> DataFrame:
    """The customers of ``customer_figures`` who bought in the look-back window, as
    :func:`rfm_customers` gives them."""
    return figures.where(F.col("frequency") > 0).select(
        F.lit(analysis_date).alias("analysis_date"), "user_id", "last_purchase_date",
        F.datediff(F.lit(analysis_date), "last_purchase_date").alias("recency"), "frequency", "monetary",
    )


def customer_rfm(transactions: DataFrame, analysis_date: date, lookback_days: int) -> DataFrame:
    """``rfm_scores`` of ``rfm_customers``: columns analysis_date, user_id, last_purchase_date,
    recency (days), frequency, monetary, r_score, f_score, m_score, fm_score (1..5 each),
    rfm_segment (one of ``SEGMENTS``). Key: (analysis_date, user_id), so each analysis date is
    kept and segment moves can be tracked.

    The customers feed both the cut points and the scored rows; Spark does not share the
    aggregation between the two, so over a long window cache ``rfm_customers`` and score that
    (the daily batch's ``rfm`` step does).
    """
    return rfm_scores(rfm_customers(transactions, analysis_date, lookback_days))
