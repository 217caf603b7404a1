"""Anomaly detector: the four rules of the requirement notes, on the transactions stream.

- ``high_value``: a transaction over $5,000;
- ``unusual_quantity``: one line of more than 10 units;
- ``rapid_fire_count``: 5 or more transactions of one user within any minute;
- ``rapid_fire_amount``: more than $10,000 spent by one user within any five minutes, in two or
  more transactions (one transaction that large is already a high-value anomaly).

The Spark query is stateless: it checks the first two rules on each transaction and hands every
purchase to the sink. The rapid-fire rules need each user's last five minutes, which the sink
keeps in PostgreSQL (``recent_purchases``), in the batch's transaction: a window starting at each
purchase is exact "any minute" semantics, and a table of a few minutes of purchases costs far
less per micro-batch than Spark's sliding windows (42 windows of state per transaction, about
27 s a batch at 2,000 events/s on this machine). Overlapping flagged windows, in this and
earlier micro-batches, are joined into one burst: a burst is one anomaly that grows while it
lasts, not one per window or per transaction. Each anomaly has a score in 0..1 (0.5 at the
threshold, rising towards 1 with the ratio observed / threshold) and a description; a score at
or above ``thresholds.anomaly_alert_score`` also raises an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.settings import Settings, Thresholds
from globalmart.streaming.contracts import dedup_horizon_seconds
from globalmart.streaming.runner import RunOptions, run, start_sink_query, topic_events
from globalmart.streaming.sink import Alert, BatchContext, count_once, first_deliveries, upsert, write_alerts

APP = "anomaly_detector"
MINUTE = timedelta(minutes=1)
FIVE_MINUTES = timedelta(minutes=5)
# score = 1 - 0.5 * (threshold / observed) ** SCORE_EXPONENT: 0.5 at the threshold; with 2,
# 0.8 (the default alert score) is reached at about 1.6 × the threshold
SCORE_EXPONENT = 2.0

ANOMALY_COLUMNS = ("anomaly_id", "kind", "user_id", "country", "transaction_ids", "first_event_time",
                   "last_event_time", "amount", "observed", "threshold", "score", "description", "last_received_at")
def anomaly_score(observed: float, threshold: float) -> float:
    if observed <= 0 or threshold <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - 0.5 * (threshold / observed) ** SCORE_EXPONENT)))


def _score_column(observed, threshold: float):
    return F.least(F.lit(1.0), F.greatest(F.lit(0.0), 1 - 0.5 * F.pow(F.lit(threshold) / observed, SCORE_EXPONENT)))


def purchases_with_rule_hits(transactions: DataFrame, thresholds: Thresholds) -> DataFrame:
    """Every transaction as a purchase (what the rapid-fire rules need), with ``hits``: the
    single-transaction rules it breaks (high value, unusual quantity; both are possible).

    Both rules are checked on one pass over the input, as an array, where a union of filtered
    selects would scan and contract-check the Kafka source once per rule."""
    high, bulk = thresholds.high_value_transaction, thresholds.unusual_quantity
    biggest = F.array_max(F.transform("items", lambda item: F.struct(item.quantity.alias("q"), item.product_id.alias("p"))))

    def rule(kind: str, breaks, observed, threshold: float, description):
        return F.when(breaks, F.struct(
            F.lit(kind).alias("kind"),
            observed.cast("double").alias("observed"),
            F.lit(float(threshold)).alias("threshold"),
            _score_column(observed, threshold).alias("score"),
            description.alias("description"),
        ))

    rules = F.array(
        rule("high_value", F.col("total_amount") > high, F.col("total_amount"), high,
             F.format_string("Transaction %s of $%,.2f is over the $%,.0f high-value threshold",
                             "transaction_id", "total_amount", F.lit(high))),
        rule("unusual_quantity", F.col("biggest.q") > bulk, F.col("biggest.q"), bulk,
             F.format_string("Transaction %s has %d units of %s in one line (more than %d)",
                             "transaction_id", "biggest.q", "biggest.p", F.lit(bulk))),
    )
    return transactions.withColumn("biggest", biggest).select(
        *PURCHASE_COLUMNS[:4],
        F.col("total_amount").alias("amount"),
        F.col("kafka_timestamp").alias("received_at"),
        F.filter(rules, lambda broken: broken.isNotNull()).alias("hits"),
        "kafka_topic", "kafka_partition", "kafka_offset",
    )


PURCHASE_COLUMNS = ("transaction_id", "user_id", "country", "event_time", "amount", "received_at")


def single_transaction_records(purchases: list[dict]) -> list[dict]:
    """The anomalies of the purchases' rule hits, one per transaction and broken rule."""
    return [
        {
            "anomaly_id": f"{hit['kind']}:{p['transaction_id']}",
            "kind": hit["kind"],
            "user_id": p["user_id"],
            "country": p["country"],
            "transaction_ids": [p["transaction_id"]],
            "first_event_time": p["event_time"],
            "last_event_time": p["event_time"],
            "amount": p["amount"],
            "observed": hit["observed"],
            "threshold": hit["threshold"],
            "score": hit["score"],
            "description": hit["description"],
            "last_received_at": p["received_at"],
        }
        for p in purchases
        for hit in p["hits"]
    ]


@dataclass(frozen=True)
class RapidFireRule:
    kind: str
    length: timedelta

    def breaks(self, purchases: list[dict], thresholds: Thresholds) -> bool:
        if self.kind == "rapid_fire_count":
            return len(purchases) >= thresholds.rapid_transactions_per_minute
        return len(purchases) >= 2 and sum(p["amount"] for p in purchases) > thresholds.rapid_spend_5min


RAPID_FIRE_RULES = (RapidFireRule("rapid_fire_count", MINUTE), RapidFireRule("rapid_fire_amount", FIVE_MINUTES))
WINDOW_LENGTH = {rule.kind: rule.length for rule in RAPID_FIRE_RULES}
LONGEST_RULE = max(WINDOW_LENGTH.values())


def flagged_windows(purchases: list[dict], new_ids: set[str], thresholds: Thresholds) -> list[dict]:
    """The windows that break a rapid-fire rule and hold at least one new purchase.

    Any set of purchases inside some window of a rule's length also lies inside the window of
    that length starting at its earliest purchase, so checking the window that starts at each
    purchase is "any minute" (or "any five minutes") exactly. A window without a new purchase
    was already checked when its last purchase arrived."""
    by_user: dict[str, list[dict]] = {}
    for purchase in purchases:
        by_user.setdefault(purchase["user_id"], []).append(purchase)
    flagged = []
    for user, mine in by_user.items():
        mine.sort(key=lambda p: (p["event_time"], p["transaction_id"]))
        for rule in RAPID_FIRE_RULES:
            end = 0
            for start, first in enumerate(mine):
                window_end = first["event_time"] + rule.length
                end = max(end, start)
                while end < len(mine) and mine[end]["event_time"] < window_end:
                    end += 1
                window = mine[start:end]
                if rule.breaks(window, thresholds) and any(p["transaction_id"] in new_ids for p in window):
                    flagged.append({"kind": rule.kind, "user_id": user, "window_start": first["event_time"],
                                    "window_end": window_end, "purchases": window})
    return flagged


@dataclass
class Burst:
    """One user's rapid-fire anomaly: the purchases of overlapping flagged windows."""

    kind: str
    user_id: str
    start: datetime  # of the first flagged window
    end: datetime  # of the last flagged window
    purchases: dict[str, dict] = field(default_factory=dict)  # transaction id → purchase
    anomaly_id: str | None = None  # kept when the burst continues an anomaly already recorded

    def add(self, purchases: list[dict]) -> None:
        for purchase in purchases:
            self.purchases.setdefault(purchase["transaction_id"], purchase)


def bursts_from_windows(flagged: list[dict]) -> list[Burst]:
    """Flagged windows → one burst per kind, user and run of overlapping windows."""
    bursts: list[Burst] = []
    open_bursts: dict[tuple[str, str], Burst] = {}
    for window in sorted(flagged, key=lambda w: (w["kind"], w["user_id"], w["window_start"])):
        key = (window["kind"], window["user_id"])
        burst = open_bursts.get(key)
        if burst is None or window["window_start"] >= burst.end:
            burst = open_bursts[key] = Burst(window["kind"], window["user_id"], window["window_start"], window["window_end"])
            bursts.append(burst)
        burst.end = max(burst.end, window["window_end"])
        burst.add(window["purchases"])
    return bursts


def continue_recorded(burst: Burst, recorded: list[dict], continued: set[str] | None = None) -> None:
    """Join ``burst`` to the user's recorded anomaly of its kind when they overlap in time:
    a burst spread over several micro-batches stays one anomaly, with one id. ``continued``:
    the ids already continued by another burst of this batch (one row cannot be written twice)."""
    first = min(p["event_time"] for p in burst.purchases.values())
    for anomaly in recorded:
        if (anomaly["kind"], anomaly["user_id"]) != (burst.kind, burst.user_id):
            continue
        if continued is not None and anomaly["anomaly_id"] in continued:
            continue
        if anomaly["last_event_time"] > first - WINDOW_LENGTH[burst.kind] or set(anomaly["transaction_ids"]) & set(burst.purchases):
            burst.anomaly_id = anomaly["anomaly_id"]
            if continued is not None:
                continued.add(burst.anomaly_id)
            for tx, amount, moment in zip(anomaly["transaction_ids"], anomaly["purchase_amounts"], anomaly["purchase_times"],
                                          strict=True):
                burst.purchases.setdefault(tx, {"transaction_id": tx, "amount": amount, "event_time": moment,
                                                "country": anomaly["country"], "received_at": anomaly["last_received_at"]})
            return


def burst_record(burst: Burst, thresholds: Thresholds) -> dict:
    purchases = sorted(burst.purchases.values(), key=lambda p: (p["event_time"], p["transaction_id"]))
    amount = sum(p["amount"] for p in purchases)
    span = (purchases[-1]["event_time"] - purchases[0]["event_time"]).total_seconds()
    user = burst.user_id
    if burst.kind == "rapid_fire_count":
        observed, threshold = float(len(purchases)), float(thresholds.rapid_transactions_per_minute)
        description = (f"{len(purchases)} transactions by {user} within {span:.0f} s "
                       f"({thresholds.rapid_transactions_per_minute} or more in a minute)")
    else:
        observed, threshold = amount, thresholds.rapid_spend_5min
        description = (f"${amount:,.2f} spent by {user} in {len(purchases)} transactions within "
                       f"{span / 60:.1f} min (more than ${thresholds.rapid_spend_5min:,.0f} in five minutes)")
    return {
        "anomaly_id": burst.anomaly_id or f"{burst.kind}:{purchases[0]['transaction_id']}",
        "kind": burst.kind,
        "user_id": user,
        "country": purchases[-1]["country"],
        "transaction_ids": [p["transaction_id"] for p in purchases],
        "first_event_time": purchases[0]["event_time"],
        "last_event_time": purchases[-1]["event_time"],
        "amount": round(amount, 2),
        "observed": observed,
        "threshold": threshold,
        "score": anomaly_score(observed, threshold),
        "description": description,
        "last_received_at": max(p["received_at"] for p in purchases),
    }


def anomaly_alerts(anomalies: list[dict], thresholds: Thresholds) -> list[Alert]:
    return [
        Alert(
            alert_id=f"anomaly:{a['anomaly_id']}",
            kind=f"anomaly.{a['kind']}",
            severity="critical" if a["score"] >= 0.95 else "warning",
            subject=f"Suspicious transaction activity ({a['kind'].replace('_', ' ')}, score {a['score']:.2f})",
            detail={key: a[key] for key in ANOMALY_COLUMNS if key != "last_received_at"},
            event_time=a["last_event_time"],
        )
        for a in anomalies
        if a["score"] >= thresholds.anomaly_alert_score
    ]


RECORDED = """
SELECT anomaly_id, kind, user_id, country, transaction_ids, last_event_time, last_received_at, purchase_amounts, purchase_times
FROM anomalies
WHERE kind IN ('rapid_fire_count', 'rapid_fire_amount') AND user_id = ANY(%s) AND last_event_time > %s
"""
RECENT = """
SELECT transaction_id, user_id, country, event_time, amount, received_at FROM recent_purchases
WHERE user_id = ANY(%s) AND event_time > %s AND event_time < %s
"""


def _fetch(cur, statement: str, params: tuple) -> list[dict]:
    cur.execute(statement, params)
    columns = [c.name for c in cur.description]
    return [dict(zip(columns, row)) for row in cur.fetchall()]


def rapid_fire_records(cur, purchases: list[dict], thresholds: Thresholds, lateness: timedelta) -> list[dict]:
    """Record the batch's purchases in ``recent_purchases`` and return the rapid-fire anomalies
    they raise or extend; purchases older than the longest rule plus ``lateness`` behind the
    batch's newest are purged (a purchase that late no longer joins a burst)."""
    if not purchases:
        return []
    upsert(cur, "recent_purchases", PURCHASE_COLUMNS, [tuple(p[c] for c in PURCHASE_COLUMNS) for p in purchases],
           key=("transaction_id",), update=())
    users = sorted({p["user_id"] for p in purchases})
    times = [p["event_time"] for p in purchases]
    nearby = _fetch(cur, RECENT, (users, min(times) - LONGEST_RULE, max(times) + LONGEST_RULE))
    cur.execute("DELETE FROM recent_purchases WHERE event_time < %s", (max(times) - LONGEST_RULE - lateness,))
    bursts = bursts_from_windows(flagged_windows(nearby, {p["transaction_id"] for p in purchases}, thresholds))
    if not bursts:
        return []
    earliest = min(p["event_time"] for b in bursts for p in b.purchases.values()) - LONGEST_RULE
    recorded = _fetch(cur, RECORDED, (sorted({b.user_id for b in bursts}), earliest))
    records, continued = [], set()
    for burst in bursts:
        continue_recorded(burst, recorded, continued)
        purchases_in_order = sorted(burst.purchases.values(), key=lambda p: (p["event_time"], p["transaction_id"]))
        records.append(burst_record(burst, thresholds) | {
            "purchase_amounts": [p["amount"] for p in purchases_in_order],
            "purchase_times": [p["event_time"] for p in purchases_in_order],
        })
    return records


def write_anomalies(thresholds: Thresholds, lateness: timedelta, horizon: timedelta):
    def handle(batch: DataFrame, context: BatchContext):
        deliveries = first_deliveries(batch.toArrow(), "transaction_id")

        def write(cur) -> int:
            # a transaction delivered again (retry, replay) is no new purchase: it would grow a burst
            purchases = count_once(cur, context.query_name, deliveries, "transaction_id", horizon).to_pylist()
            records = [record | {"purchase_amounts": [record["amount"]], "purchase_times": [record["first_event_time"]]}
                       for record in single_transaction_records(purchases)]
            records += rapid_fire_records(cur, purchases, thresholds, lateness)
            columns = (*ANOMALY_COLUMNS, "purchase_amounts", "purchase_times")
            written = upsert(cur, "anomalies", columns, [tuple(r[c] for c in columns) for r in records], key=("anomaly_id",))
            write_alerts(cur, APP, anomaly_alerts(records, thresholds))
            return written

        return write

    return handle


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    purchases = purchases_with_rule_hits(topic_events(spark, settings, "transactions"), settings.thresholds)
    lateness = timedelta(seconds=settings.streaming.rapid_fire_lateness_seconds)
    horizon = timedelta(seconds=dedup_horizon_seconds(settings))
    return [start_sink_query(purchases, settings, options, "rules", write_anomalies(settings.thresholds, lateness, horizon),
                             output_mode="append", publishes_alerts=True)]


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
