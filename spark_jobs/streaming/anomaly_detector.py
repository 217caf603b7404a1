"""Anomaly detector: the four rules of the requirement notes, on the transactions stream.

- ``high_value``: a transaction over $5,000;
- ``unusual_quantity``: one line of more than 10 units;
- ``rapid_fire_count``: 5 or more transactions of one user within a minute;
- ``rapid_fire_amount``: more than $10,000 spent by one user within five minutes, in two or
  more transactions (one transaction that large is already a high-value anomaly).

The first two look at one transaction. The rapid-fire rules are sliding event-time windows per
user (Spark state, evicted by the watermark); only the windows that break a rule reach Python,
where overlapping windows, in this and earlier micro-batches, are joined into one burst: a
burst is one anomaly that grows while it lasts, not one per window or per transaction. Each anomaly has a score in 0..1 (0.5 at the threshold, rising towards 1 with
the ratio observed / threshold) and a description; a score at or above
``thresholds.anomaly_alert_score`` also raises an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.settings import Settings, Thresholds
from globalmart.streaming.runner import RunOptions, run, start_sink_query, topic_events
from globalmart.streaming.sink import Alert, BatchContext, upsert, write_alerts

APP = "anomaly_detector"
MINUTE = timedelta(minutes=1)
FIVE_MINUTES = timedelta(minutes=5)
# score = 1 - 0.5 * (threshold / observed) ** SCORE_EXPONENT: 0.5 at the threshold; with 2,
# 0.8 (the default alert score) is reached at about 1.6 × the threshold
SCORE_EXPONENT = 2.0

ANOMALY_COLUMNS = ("anomaly_id", "kind", "user_id", "country", "transaction_ids", "first_event_time",
                   "last_event_time", "amount", "observed", "threshold", "score", "description", "last_received_at")
ANOMALY_FIELDS = (
    ("anomaly_id", "string"), ("kind", "string"), ("user_id", "string"), ("country", "string"),
    ("transaction_ids", "array<string>"), ("first_event_time", "timestamp"), ("last_event_time", "timestamp"),
    ("amount", "double"), ("observed", "double"), ("threshold", "double"), ("score", "double"),
    ("description", "string"), ("last_received_at", "timestamp"),
)
WINDOW_STRUCT = (
    "struct<window_start:timestamp,window_end:timestamp,purchases:array<struct<event_time:timestamp,"
    "transaction_id:string,amount:double,country:string,received_at:timestamp>>>"
)


def anomaly_score(observed: float, threshold: float) -> float:
    if observed <= 0 or threshold <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - 0.5 * (threshold / observed) ** SCORE_EXPONENT)))


def _score_column(observed, threshold: float):
    return F.least(F.lit(1.0), F.greatest(F.lit(0.0), 1 - 0.5 * F.pow(F.lit(threshold) / observed, SCORE_EXPONENT)))


def single_transaction_anomalies(transactions: DataFrame, thresholds: Thresholds) -> DataFrame:
    """High-value transactions and transactions with an unusually large line.

    Both rules are checked on one pass over the input (a transaction may break both): the
    anomalies of a transaction are an array exploded once, where a union of two filtered
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
    return (
        transactions.withColumn("biggest", biggest)
        .select("*", F.explode(F.filter(rules, lambda broken: broken.isNotNull())).alias("anomaly"))
        .select(
            F.concat(F.col("anomaly.kind"), F.lit(":"), "transaction_id").alias("anomaly_id"),
            "anomaly.kind",
            "user_id",
            "country",
            F.array("transaction_id").alias("transaction_ids"),
            F.col("event_time").alias("first_event_time"),
            F.col("event_time").alias("last_event_time"),
            F.col("total_amount").alias("amount"),
            "anomaly.observed",
            "anomaly.threshold",
            "anomaly.score",
            "anomaly.description",
            F.col("kafka_timestamp").alias("last_received_at"),
        )
    )


def rapid_fire_windows(transactions: DataFrame, thresholds: Thresholds) -> DataFrame:
    """Per user, the sliding windows that break a rapid-fire rule, with their purchases.

    A minute is a 60-second window starting every 5 s (a burst within 55 s always fits one),
    five minutes a 300-second window starting every 10 s. ``transactions`` needs a watermark.
    """
    purchase = F.struct(
        "event_time", "transaction_id", F.col("total_amount").alias("amount"), "country",
        F.col("kafka_timestamp").alias("received_at"),
    )

    def windows(kind: str, length: str, slide: str) -> DataFrame:
        return (
            transactions.groupBy("user_id", F.window("event_time", length, slide))
            .agg(F.count(F.lit(1)).alias("transactions"), F.sum("total_amount").alias("amount"),
                 F.collect_list(purchase).alias("purchases"))
            .select(F.lit(kind).alias("kind"), "user_id", F.col("window.start").alias("window_start"),
                    F.col("window.end").alias("window_end"), "transactions", "amount", "purchases")
        )

    count = windows("rapid_fire_count", "1 minute", "5 seconds").where(
        F.col("transactions") >= thresholds.rapid_transactions_per_minute)
    spend = windows("rapid_fire_amount", "5 minutes", "10 seconds").where(
        (F.col("transactions") >= 2) & (F.col("amount") > thresholds.rapid_spend_5min))
    return count.unionByName(spend)


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


WINDOW_LENGTH = {"rapid_fire_count": MINUTE, "rapid_fire_amount": FIVE_MINUTES}


def continue_recorded(burst: Burst, recorded: list[dict]) -> None:
    """Join ``burst`` to the user's recorded anomaly of its kind when they overlap in time:
    a burst spread over several micro-batches stays one anomaly, with one id."""
    first = min(p["event_time"] for p in burst.purchases.values())
    for anomaly in recorded:
        if (anomaly["kind"], anomaly["user_id"]) != (burst.kind, burst.user_id):
            continue
        if anomaly["last_event_time"] > first - WINDOW_LENGTH[burst.kind] or set(anomaly["transaction_ids"]) & set(burst.purchases):
            burst.anomaly_id = anomaly["anomaly_id"]
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


def write_anomalies(thresholds: Thresholds):
    def handle(batch: DataFrame, _context: BatchContext):
        rows = batch.toArrow().to_pylist()
        single = [row for row in rows if row["kind"] in ("high_value", "unusual_quantity")]
        flagged = [row["window"] | {"kind": row["kind"], "user_id": row["user_id"]} for row in rows if row["window"]]

        def write(cur) -> int:
            records = [{key: row[key] for key in ANOMALY_COLUMNS} | {"purchase_amounts": [row["amount"]],
                                                                      "purchase_times": [row["first_event_time"]]}
                       for row in single]
            bursts = bursts_from_windows(flagged)
            if bursts:
                earliest = min(p["event_time"] for b in bursts for p in b.purchases.values()) - FIVE_MINUTES
                cur.execute(RECORDED, (sorted({b.user_id for b in bursts}), earliest))
                columns = [c.name for c in cur.description]
                recorded = [dict(zip(columns, r)) for r in cur.fetchall()]
                for burst in bursts:
                    continue_recorded(burst, recorded)
                    record = burst_record(burst, thresholds)
                    purchases = sorted(burst.purchases.values(), key=lambda p: (p["event_time"], p["transaction_id"]))
                    records.append(record | {"purchase_amounts": [p["amount"] for p in purchases],
                                             "purchase_times": [p["event_time"] for p in purchases]})
            columns = (*ANOMALY_COLUMNS, "purchase_amounts", "purchase_times")
            written = upsert(cur, "anomalies", columns, [tuple(r[c] for c in columns) for r in records], key=("anomaly_id",))
            write_alerts(cur, APP, anomaly_alerts(records, thresholds))
            return written

        return write

    return handle


def detect(transactions: DataFrame, thresholds: Thresholds) -> DataFrame:
    """Single-transaction anomalies and flagged rapid-fire windows, as one stream of rows:
    the anomaly columns, plus ``window`` (window start, end and purchases) for a flagged window."""
    single = single_transaction_anomalies(transactions, thresholds).withColumn(
        "window", F.lit(None).cast(WINDOW_STRUCT))
    windows = rapid_fire_windows(transactions, thresholds).select(
        *[F.lit(None).cast(dtype).alias(name) if name not in ("kind", "user_id") else F.col(name)
          for name, dtype in ANOMALY_FIELDS],
        F.struct("window_start", "window_end", "purchases").alias("window"),
    )
    return single.unionByName(windows)


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    transactions = topic_events(spark, settings, "transactions").withWatermark(
        "event_time", f"{settings.streaming.anomaly_watermark_seconds} seconds"
    )
    return [start_sink_query(detect(transactions, settings.thresholds), settings, options, "rules",
                             write_anomalies(settings.thresholds), publishes_alerts=True)]


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
