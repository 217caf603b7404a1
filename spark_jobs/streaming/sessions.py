"""Sessions and cart abandonment.

- ``sessions``: a user's views, cart events and transactions form a session until 30 minutes
  pass without activity (event-time session windows). A session is written once it has
  closed (the watermark passed its end) with its duration, counts, purchase value and the
  categories it viewed, put in the cart and bought; ``funnel_hourly`` (a view) turns those
  into view → cart → purchase conversion by hour, country and category.
- ``cart_abandonment``: a user's cart events and transactions, split by the abandonment
  timeout (15 minutes without cart activity). A cart whose items were not bought by then is
  abandoned at its last activity + the timeout. More abandonments in an hour than
  ``thresholds.abandonment_spike_per_hour`` raise one alert for that hour.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from globalmart.settings import Settings, Thresholds
from globalmart.streaming.runner import RunOptions, run, start_sink_query, topic_events
from globalmart.streaming.sink import Alert, BatchContext, rows_of, upsert, write_alerts

APP = "sessions"
CART_LINE = "map<string,struct<quantity:bigint,unit_price:double,category:string>>"

SESSION_COLUMNS = ("user_id", "session_start", "session_end", "duration_seconds", "country", "events", "views",
                   "cart_adds", "cart_removes", "cart_updates", "checkouts", "purchases", "purchase_value",
                   "categories_viewed", "categories_carted", "categories_purchased", "session_ids")
ABANDONMENT_COLUMNS = ("user_id", "cart_started_at", "last_activity_at", "abandoned_at", "country", "items",
                       "cart_value", "categories", "session_ids")


def activity(views: DataFrame | None, carts: DataFrame, transactions: DataFrame) -> DataFrame:
    """Every shopper action as one row: user, time, kind (view, add, remove, update, checkout,
    purchase), product, quantity, unit price, categories, value, country, session id and
    ``event_key``, the business id it counts under. Without ``views``, the cart activity alone
    (cart events and purchases). An input with a ``tick`` column brings its ClockTicks as rows of
    kind ``tick`` (see :func:`counted_activity`)."""
    common = ["user_id", "event_time", "country", "session_id"]

    def kind(frame: DataFrame, event_kind) -> Column:
        return F.when(F.col("tick"), F.lit("tick")).otherwise(event_kind) if "tick" in frame.columns else event_kind

    def key(prefix: str, column: str) -> Column:
        return F.concat(F.lit(prefix), F.col(column)).alias("event_key")

    cart_activity = (
        carts.select(
            *common, kind(carts, F.col("action")).alias("kind"), "product_id", "quantity", "unit_price",
            F.when(F.col("category").isNotNull(), F.array("category")).otherwise(F.array().cast("array<string>")).alias("categories"),
            F.col("cart_value").alias("value"), key("cart:", "event_id"),
        )
        .unionByName(transactions.select(
            *common, kind(transactions, F.lit("purchase")).alias("kind"), F.lit(None).cast("string").alias("product_id"),
            F.aggregate("items", F.lit(0).cast("long"), lambda n, item: n + item.quantity).alias("quantity"),
            F.lit(None).cast("double").alias("unit_price"),
            F.array_distinct(F.transform("items", lambda item: item.category)).alias("categories"),
            F.col("total_amount").alias("value"), key("purchase:", "transaction_id"),
        ))
    )
    if views is None:
        return cart_activity
    return views.select(
        *common, kind(views, F.lit("view")).alias("kind"), "product_id", F.lit(None).cast("long").alias("quantity"),
        F.lit(None).cast("double").alias("unit_price"), F.array("category").alias("categories"),
        F.lit(None).cast("double").alias("value"), key("view:", "event_id"),
    ).unionByName(cart_activity)


def counted_activity(activity_rows: DataFrame, watermark: str) -> DataFrame:
    """``activity`` with its event-time watermark, without ClockTicks, each business id once.

    The ticks move the watermark and go: the filter names ``event_time`` so that the optimizer
    keeps it above the watermark (it pushes filters on other columns below, where the ticks
    would never reach the watermark). A duplicate (producer retry, replay) is dropped while the
    watermark has not passed its original; after that it is later than the watermark and
    dropped as late, so each id counts once."""
    return (
        activity_rows.withWatermark("event_time", watermark)
        .where((F.col("kind") != "tick") | F.col("event_time").isNull())
        .dropDuplicatesWithinWatermark(["event_key"])
    )


def _count(kind: str) -> Column:
    return F.count_if(F.col("kind") == kind).cast("int")


def _categories(*kinds: str) -> Column:
    # a set of the events' category arrays: the session's state keeps each distinct one once
    return F.array_sort(F.array_distinct(F.flatten(F.collect_set(F.when(F.col("kind").isin(*kinds), F.col("categories"))))))


def sessions(activity_rows: DataFrame, gap_minutes: int) -> DataFrame:
    """Closed sessions (append mode): ``activity_rows`` needs a watermark on event_time."""
    return (
        activity_rows.groupBy("user_id", F.session_window("event_time", f"{gap_minutes} minutes").alias("window"))
        .agg(
            F.min("event_time").alias("session_start"),
            F.max("event_time").alias("session_end"),
            F.min_by("country", "event_time").alias("country"),
            F.count(F.lit(1)).cast("int").alias("events"),
            _count("view").alias("views"),
            _count("add").alias("cart_adds"),
            _count("remove").alias("cart_removes"),
            _count("update").alias("cart_updates"),
            _count("checkout").alias("checkouts"),
            _count("purchase").alias("purchases"),
            F.coalesce(F.sum(F.when(F.col("kind") == "purchase", F.col("value").cast("decimal(14,2)"))), F.lit(0))
            .cast("decimal(14,2)").alias("purchase_value"),
            _categories("view").alias("categories_viewed"),
            _categories("add", "update").alias("categories_carted"),
            _categories("purchase").alias("categories_purchased"),
            F.array_sort(F.collect_set("session_id")).alias("session_ids"),
        )
        .select(
            "user_id", "session_start", "session_end",
            (F.col("session_end").cast("double") - F.col("session_start").cast("double")).alias("duration_seconds"),
            *SESSION_COLUMNS[4:],
        )
    )


def _cart_contents(events: Column) -> Column:
    """Product → (quantity, unit price, category) after replaying add/remove/update events in order."""

    def step(lines: Column, event: Column) -> Column:
        current = F.coalesce(lines[event.product_id].quantity, F.lit(0).cast("long"))
        quantity = (
            F.when(event.kind == "add", current + event.quantity)
            .when(event.kind == "remove", F.greatest(current - event.quantity, F.lit(0).cast("long")))
            .otherwise(event.quantity)
        )
        line = F.struct(quantity.alias("quantity"), event.unit_price.alias("unit_price"), event.categories[0].alias("category"))
        return F.map_concat(F.map_filter(lines, lambda product, _: product != event.product_id), F.create_map(event.product_id, line))

    return F.aggregate(events, F.create_map().cast(CART_LINE), step)


def cart_abandonments(cart_activity: DataFrame, timeout_minutes: int) -> DataFrame:
    """Abandoned carts (append mode) from cart events and purchases with a watermark on event_time.

    A user's cart activity is split where ``timeout_minutes`` pass without any; in each part,
    the cart is what was added after the last purchase. It is abandoned when it still holds items.
    """
    carts = (
        cart_activity.where(F.col("kind") != "view")
        .groupBy("user_id", F.session_window("event_time", f"{timeout_minutes} minutes").alias("window"))
        .agg(
            F.array_sort(F.collect_list(F.struct("event_time", "kind", "product_id", "quantity", "unit_price",
                                                 "categories", "country", "session_id"))).alias("events"),
        )
    )
    last_purchase = F.aggregate(
        "events", F.lit(None).cast("timestamp"), lambda last, e: F.when(e.kind == "purchase", e.event_time).otherwise(last)
    )
    open_events = F.filter(
        "events",
        lambda e: (F.col("last_purchase").isNull() | (e.event_time > F.col("last_purchase"))) & e.kind.isin("add", "remove", "update"),
    )
    lines = F.filter(F.map_values(_cart_contents(F.col("open_events"))), lambda line: line.quantity > 0)
    last_activity = F.array_max(F.transform("events", lambda e: e.event_time))
    return (
        carts.select("user_id", "events", last_purchase.alias("last_purchase"))
        .select("user_id", "events", open_events.alias("open_events"))
        .select("user_id", "events", "open_events", lines.alias("lines"))
        .where(F.size("lines") > 0)
        .select(
            "user_id",
            F.col("open_events")[0].event_time.alias("cart_started_at"),
            last_activity.alias("last_activity_at"),
            (last_activity + F.expr(f"INTERVAL {int(timeout_minutes)} MINUTES")).alias("abandoned_at"),
            F.element_at("events", -1).country.alias("country"),
            F.aggregate("lines", F.lit(0).cast("long"), lambda n, line: n + line.quantity).cast("int").alias("items"),
            F.aggregate("lines", F.lit(0).cast("decimal(14,2)"),
                        lambda total, line: (total + line.quantity * line.unit_price.cast("decimal(12,2)")).cast("decimal(14,2)"))
            .alias("cart_value"),
            F.array_sort(F.array_distinct(F.transform("lines", lambda line: line.category))).alias("categories"),
            F.array_sort(F.array_distinct(F.transform("events", lambda e: e.session_id))).alias("session_ids"),
        )
    )


def write_sessions(batch: DataFrame, _context: BatchContext):
    rows = rows_of(batch.toArrow(), SESSION_COLUMNS)
    return lambda cur: upsert(cur, "sessions", SESSION_COLUMNS, rows, key=("user_id", "session_start"))


SPIKES = """
SELECT date_trunc('hour', abandoned_at) AS hour, count(*) AS abandoned, sum(cart_value) AS value
FROM cart_abandonments
WHERE abandoned_at >= date_trunc('hour', %(first)s::timestamptz) AND abandoned_at < date_trunc('hour', %(last)s::timestamptz) + interval '1 hour'
GROUP BY 1
HAVING count(*) > %(threshold)s
"""


def spike_alerts(spikes: list[tuple], thresholds: Thresholds) -> list[Alert]:
    """(hour, abandoned carts, their value) over the threshold → one alert per hour."""
    return [
        Alert(
            alert_id=f"abandonment_spike:{hour.isoformat()}",
            kind="cart_abandonment.spike",
            severity="warning",
            subject=f"Cart abandonment spike: more than {thresholds.abandonment_spike_per_hour} carts abandoned "
                    f"in the hour from {hour:%Y-%m-%d %H:%M} UTC",
            detail={"hour": hour.isoformat(), "abandoned_carts_so_far": abandoned, "abandoned_value_so_far": float(value),
                    "threshold": thresholds.abandonment_spike_per_hour},
            event_time=hour,
        )
        for hour, abandoned, value in spikes
    ]


def write_abandonments(thresholds: Thresholds):
    def handle(batch: DataFrame, _context: BatchContext):
        rows = rows_of(batch.toArrow(), ABANDONMENT_COLUMNS)

        def write(cur) -> int:
            written = upsert(cur, "cart_abandonments", ABANDONMENT_COLUMNS, rows, key=("user_id", "cart_started_at"))
            if rows:
                times = [row[3] for row in rows]
                cur.execute(SPIKES, {"first": min(times), "last": max(times), "threshold": thresholds.abandonment_spike_per_hour})
                write_alerts(cur, APP, spike_alerts(cur.fetchall(), thresholds))
            return written

        return write

    return handle


def start_queries(spark: SparkSession, settings: Settings, options: RunOptions):
    t = settings.thresholds
    watermark = f"{settings.streaming.session_watermark_seconds} seconds"

    def shopper_activity(with_views: bool) -> DataFrame:
        views = topic_events(spark, settings, "product_views", with_ticks=True) if with_views else None
        carts, transactions = (topic_events(spark, settings, key, with_ticks=True) for key in ("cart_events", "transactions"))
        return counted_activity(activity(views, carts, transactions), watermark)

    return [
        start_sink_query(
            sessions(shopper_activity(with_views=True), t.session_timeout_minutes),
            settings, options, "sessions", write_sessions, output_mode="append",
            trigger_seconds=settings.streaming.session_trigger_seconds, checkpoint_part="sessions_distinct",
        ),
        start_sink_query(
            cart_abandonments(shopper_activity(with_views=False), t.cart_abandonment_minutes),
            settings, options, "cart_abandonment", write_abandonments(t), output_mode="append", publishes_alerts=True,
            trigger_seconds=settings.streaming.session_trigger_seconds, checkpoint_part="cart_abandonment_distinct",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    run(APP, {APP: start_queries}, argv)


if __name__ == "__main__":
    main()
