"""Anomaly detector: the four rules of the requirement notes, on the transactions stream.

- ``high_value``: a transaction over $5,000;
- ``unusual_quantity``: one line of more than 10 units;
- ``rapid_fire_count``: 5 or more transactions of one user within a minute;
- ``rapid_fire_amount``: more than $10,000 spent by one user within five minutes, in two or
  more transactions (one transaction that large is already a high-value anomaly).

The first two look at one transaction (Spark SQL). The rapid-fire rules slide over each user's
recent transactions, kept in Spark state (``applyInPandasWithState``) until the watermark
passes: a burst is one anomaly that grows while it lasts, not one per window or per
transaction. Each anomaly has a score in 0..1 (0.5 at the threshold, rising towards 1 with
the ratio observed / threshold) and a description; a score at or above
``thresholds.anomaly_alert_score`` also raises an alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout

from globalmart.settings import Settings, Thresholds
from globalmart.streaming.contracts import checked_records, valid_events
from globalmart.streaming.runner import RunOptions, kafka_stream, run, start_sink_query
from globalmart.streaming.sink import Alert, BatchContext, rows_of, upsert, write_alerts

APP = "anomaly_detector"
MINUTE = timedelta(minutes=1)
FIVE_MINUTES = timedelta(minutes=5)
# score = 1 - 0.5 * (threshold / observed) ** SCORE_EXPONENT: 0.5 at the threshold; with 2,
# 0.8 (the default alert score) is reached at about 1.6 × the threshold
SCORE_EXPONENT = 2.0

ANOMALY_COLUMNS = ("anomaly_id", "kind", "user_id", "country", "transaction_ids", "first_event_time",
                   "last_event_time", "amount", "observed", "threshold", "score", "description", "last_received_at")
ANOMALY_SCHEMA = (
    "anomaly_id string, kind string, user_id string, country string, transaction_ids array<string>, "
    "first_event_time timestamp, last_event_time timestamp, amount double, observed double, threshold double, "
    "score double, description string, last_received_at timestamp"
)
RAPID_STATE_SCHEMA = "recent string"


def anomaly_score(observed: float, threshold: float) -> float:
    if observed <= 0 or threshold <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - 0.5 * (threshold / observed) ** SCORE_EXPONENT)))


def _score_column(observed, threshold: float):
    return F.least(F.lit(1.0), F.greatest(F.lit(0.0), 1 - 0.5 * F.pow(F.lit(threshold) / observed, SCORE_EXPONENT)))


def single_transaction_anomalies(transactions: DataFrame, thresholds: Thresholds) -> DataFrame:
    """High-value transactions and transactions with an unusually large line."""
    high_value = transactions.where(F.col("total_amount") > thresholds.high_value_transaction).select(
        F.concat(F.lit("high_value:"), "transaction_id").alias("anomaly_id"),
        F.lit("high_value").alias("kind"),
        "user_id",
        "country",
        F.array("transaction_id").alias("transaction_ids"),
        F.col("event_time").alias("first_event_time"),
        F.col("event_time").alias("last_event_time"),
        F.col("total_amount").alias("amount"),
        F.col("total_amount").alias("observed"),
        F.lit(thresholds.high_value_transaction).alias("threshold"),
        _score_column(F.col("total_amount"), thresholds.high_value_transaction).alias("score"),
        F.format_string(
            "Transaction %s of $%,.2f is over the $%,.0f high-value threshold",
            "transaction_id", "total_amount", F.lit(thresholds.high_value_transaction),
        ).alias("description"),
        F.col("kafka_timestamp").alias("last_received_at"),
    )
    biggest_line = F.array_max(F.transform("items", lambda item: F.struct(item.quantity.alias("q"), item.product_id.alias("p"))))
    lines = transactions.withColumn("biggest", biggest_line)
    unusual = lines.where(F.col("biggest.q") > thresholds.unusual_quantity).select(
        F.concat(F.lit("unusual_quantity:"), "transaction_id").alias("anomaly_id"),
        F.lit("unusual_quantity").alias("kind"),
        "user_id",
        "country",
        F.array("transaction_id").alias("transaction_ids"),
        F.col("event_time").alias("first_event_time"),
        F.col("event_time").alias("last_event_time"),
        F.col("total_amount").alias("amount"),
        F.col("biggest.q").cast("double").alias("observed"),
        F.lit(float(thresholds.unusual_quantity)).alias("threshold"),
        _score_column(F.col("biggest.q"), thresholds.unusual_quantity).alias("score"),
        F.format_string(
            "Transaction %s has %d units of %s in one line (more than %d)",
            "transaction_id", "biggest.q", "biggest.p", F.lit(thresholds.unusual_quantity),
        ).alias("description"),
        F.col("kafka_timestamp").alias("last_received_at"),
    )
    return high_value.unionByName(unusual)


@dataclass
class Purchase:
    transaction_id: str
    event_time: datetime
    amount: float
    country: str
    received_at: datetime


@dataclass
class Burst:
    """An open rapid-fire anomaly: grows while the user's transactions keep breaking the rule."""

    kind: str
    purchases: list[Purchase] = field(default_factory=list)

    @property
    def anomaly_id(self) -> str:
        return f"{self.kind}:{self.purchases[0].transaction_id}"


@dataclass
class RapidFireRules:
    """Sliding-window rules over one user's transactions, fed in event-time order."""

    thresholds: Thresholds
    recent: list[Purchase] = field(default_factory=list)
    bursts: dict[str, Burst] = field(default_factory=dict)

    def add(self, purchase: Purchase) -> list[Burst]:
        """Take one transaction; return the bursts it opened or extended."""
        self.recent.append(purchase)
        self.recent.sort(key=lambda p: p.event_time)
        now = max(p.event_time for p in self.recent)
        self.recent = [p for p in self.recent if p.event_time > now - FIVE_MINUTES]
        in_minute = [p for p in self.recent if p.event_time > now - MINUTE]
        in_five = self.recent
        changed = []
        t = self.thresholds
        if len(in_minute) >= t.rapid_transactions_per_minute:
            changed.append(self._grow("rapid_fire_count", in_minute, MINUTE))
        if len(in_five) >= 2 and sum(p.amount for p in in_five) > t.rapid_spend_5min:
            changed.append(self._grow("rapid_fire_amount", in_five, FIVE_MINUTES))
        return changed

    def _grow(self, kind: str, window: list[Purchase], span: timedelta) -> Burst:
        burst = self.bursts.get(kind)
        if burst is None or burst.purchases[-1].event_time <= window[-1].event_time - span:
            burst = self.bursts[kind] = Burst(kind)  # the previous burst (if any) ended
        known = {p.transaction_id for p in burst.purchases}
        burst.purchases = sorted(burst.purchases + [p for p in window if p.transaction_id not in known],
                                 key=lambda p: p.event_time)
        return burst

    def expired(self, watermark: datetime) -> bool:
        return not self.recent or self.recent[-1].event_time + FIVE_MINUTES < watermark

    def to_state(self) -> str:
        import json

        def encode(p: Purchase):
            return [p.transaction_id, p.event_time.timestamp(), p.amount, p.country, p.received_at.timestamp()]

        return json.dumps({
            "recent": [encode(p) for p in self.recent],
            "bursts": {kind: [encode(p) for p in b.purchases] for kind, b in self.bursts.items()},
        })

    @classmethod
    def from_state(cls, thresholds: Thresholds, state: str) -> RapidFireRules:
        import json

        def decode(row) -> Purchase:
            return Purchase(row[0], datetime.fromtimestamp(row[1], UTC), row[2], row[3], datetime.fromtimestamp(row[4], UTC))

        data = json.loads(state)
        return cls(
            thresholds,
            [decode(row) for row in data["recent"]],
            {kind: Burst(kind, [decode(row) for row in rows]) for kind, rows in data["bursts"].items()},
        )


def burst_record(user_id: str, burst: Burst, thresholds: Thresholds) -> dict:
    purchases = burst.purchases
    amount = sum(p.amount for p in purchases)
    span = (purchases[-1].event_time - purchases[0].event_time).total_seconds()
    if burst.kind == "rapid_fire_count":
        observed, threshold = float(len(purchases)), float(thresholds.rapid_transactions_per_minute)
        description = (f"{len(purchases)} transactions by {user_id} within {span:.0f} s "
                       f"({thresholds.rapid_transactions_per_minute} or more in a minute)")
    else:
        observed, threshold = amount, thresholds.rapid_spend_5min
        description = (f"${amount:,.2f} spent by {user_id} in {len(purchases)} transactions within "
                       f"{span / 60:.1f} min (more than ${thresholds.rapid_spend_5min:,.0f} in five minutes)")
    return {
        "anomaly_id": burst.anomaly_id,
        "kind": burst.kind,
        "user_id": user_id,
        "country": purchases[-1].country,
        "transaction_ids": [p.transaction_id for p in purchases],
        "first_event_time": purchases[0].event_time,
        "last_event_time": purchases[-1].event_time,
        "amount": round(amount, 2),
        "observed": observed,
        "threshold": threshold,
        "score": anomaly_score(observed, threshold),
        "description": description,
        "last_received_at": max(p.received_at for p in purchases),
    }


def rapid_fire_anomalies(transactions: DataFrame, thresholds: Thresholds) -> DataFrame:
    """Per user, the rapid-fire bursts opened or grown by this batch; ``transactions`` needs a watermark."""

    def detect(key, frames: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:
        (user_id,) = key
        if state.hasTimedOut:
            state.remove()
            return
        rules = RapidFireRules.from_state(thresholds, state.get[0]) if state.exists else RapidFireRules(thresholds)
        batch = pd.concat(list(frames)).sort_values("event_time")
        changed: dict[str, Burst] = {}
        for row in batch.itertuples(index=False):
            purchase = Purchase(row.transaction_id, _utc(row.event_time), float(row.total_amount), row.country,
                                _utc(row.kafka_timestamp))
            for burst in rules.add(purchase):
                changed[burst.anomaly_id] = burst
        state.update((rules.to_state(),))
        state.setTimeoutTimestamp(int((rules.recent[-1].event_time + FIVE_MINUTES).timestamp() * 1000))
        if changed:
            yield pd.DataFrame([burst_record(user_id, burst, thresholds) for burst in changed.values()])

    return (
        transactions.select("user_id", "transaction_id", "event_time", "total_amount", "country", "kafka_timestamp")
        .groupBy("user_id")
        .applyInPandasWithState(detect, ANOMALY_SCHEMA, RAPID_STATE_SCHEMA, "update", GroupStateTimeout.EventTimeTimeout)
    )


def _utc(moment) -> datetime:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)).to_pydatetime()


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


def write_anomalies(thresholds: Thresholds):
    def handle(batch: DataFrame, _context: BatchContext):
        table = batch.toArrow()
        rows = rows_of(table, ANOMALY_COLUMNS)

        def write(cur) -> int:
            written = upsert(cur, "anomalies", ANOMALY_COLUMNS, rows, key=("anomaly_id",))
            write_alerts(cur, APP, anomaly_alerts([dict(zip(ANOMALY_COLUMNS, row)) for row in rows], thresholds))
            return written

        return write

    return handle


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    checked = checked_records(kafka_stream(spark, settings, ["transactions"]), settings)
    transactions = valid_events(checked, settings, "transactions").withWatermark(
        "event_time", f"{settings.streaming.anomaly_watermark_seconds} seconds"
    )
    anomalies = single_transaction_anomalies(transactions, settings.thresholds).unionByName(
        rapid_fire_anomalies(transactions, settings.thresholds)
    )
    return [start_sink_query(anomalies, settings, options, "rules", write_anomalies(settings.thresholds),
                             publishes_alerts=True)]


def main(argv: list[str] | None = None) -> None:
    run(APP, start_queries, argv)


if __name__ == "__main__":
    main()
