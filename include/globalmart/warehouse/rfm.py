"""RFM: customers scored on recency, frequency and monetary value, and named segments.

Over the look-back window (the ``lookback_days`` days ending on the analysis date, inclusive):

- recency: days from the customer's last purchase date to the analysis date (0 = that day);
- frequency: number of transactions; monetary: the sum of their ``total_amount`` in decimals
  (one flat column rather than the nested lines keeps a year-long scan light; the raw gate
  checks each total equals its lines within a cent).

Each is scored 1–5 by quintile: ``ntile(5)`` over the customers ordered by the value, so
each score holds a fifth of the customers. Higher is better: more recent, more frequent,
more spent = 5. Equal values are ordered by user id, which keeps the scores deterministic
(customers with the same value can fall on both sides of a quintile boundary).

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
partition), then three ranking windows over one small row per customer. Quintiles need one
global order, so the ranking runs in a single task (Spark warns about it): three sorts of as
many rows as there are customers.
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


def rfm_segment(r_score: Column, fm_score: Column) -> Column:
    """The segment of an R score and an FM score (1..5 each), by ``SEGMENT_GRID``."""
    cells = [F.lit(SEGMENT_GRID[r][fm - 1]) for r in range(1, QUINTILES + 1) for fm in range(1, QUINTILES + 1)]
    return F.element_at(F.array(*cells), (r_score - 1) * QUINTILES + fm_score)


def customer_rfm(transactions: DataFrame, analysis_date: date, lookback_days: int) -> DataFrame:
    """Lake transactions (any date range; the look-back window is selected here by
    ``event_date``) → one row per customer who bought in the window.

    Columns: analysis_date, user_id, last_purchase_date, recency (days), frequency,
    monetary, r_score, f_score, m_score, fm_score (1..5 each), rfm_segment (one of ``SEGMENTS``).
    Key: (analysis_date, user_id), so each analysis date is kept and segment moves can be tracked.
    """
    first_day = analysis_date - timedelta(days=lookback_days - 1)
    customers = (
        transactions.where(F.col("event_date").between(F.lit(first_day), F.lit(analysis_date)))
        .groupBy("user_id")
        .agg(
            F.max("event_date").alias("last_purchase_date"),
            F.count(F.lit(1)).cast("int").alias("frequency"),
            F.sum(F.col("total_amount").cast(PRICE)).cast(MONEY).alias("monetary"),
        )
        .withColumn("recency", F.datediff(F.lit(analysis_date), "last_purchase_date"))
    )

    def quintile(*order) -> Column:
        return F.ntile(QUINTILES).over(Window.orderBy(*order, "user_id"))

    return (
        customers.withColumn("r_score", quintile(F.desc("recency")))
        .withColumn("f_score", quintile("frequency"))
        .withColumn("m_score", quintile("monetary"))
        .withColumn("fm_score", F.ceil((F.col("f_score") + F.col("m_score")) / 2).cast("int"))
        .select(
            F.lit(analysis_date).alias("analysis_date"),
            "user_id", "last_purchase_date", "recency", "frequency", "monetary",
            "r_score", "f_score", "m_score", "fm_score",
            rfm_segment(F.col("r_score"), F.col("fm_score")).alias("rfm_segment"),
        )
    )
