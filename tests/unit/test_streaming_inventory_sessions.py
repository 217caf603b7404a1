"""Inventory changes and stock crossings; sessions, cart abandonment and the shopper activity they read."""

from decimal import Decimal

from globalmart.settings import Thresholds
from globalmart.streaming.sink import BatchContext
from spark_jobs.streaming.inventory_tracker import crossing_alerts, stock_changes, stock_movements
from spark_jobs.streaming.sessions import activity, cart_abandonments, counted_activity, sessions, spike_alerts
from tests.streaming_fixtures import CART, RESTOCK, TRANSACTION, VIEW, at, cart, clock_tick, restock, transaction, view
from tests.streaming_harness import run_stream

T = Thresholds()
PHONES, BOOKS = "Electronics > Phones", "Books > Fiction"


def test_stock_changes_sum_sales_and_restocks_per_product(spark):
    sales = spark.createDataFrame([
        transaction(at(10, 1), lines=[("P1", PHONES, 2, 10.0), ("P2", BOOKS, 1, 5.0)]),
        transaction(at(10, 3), lines=[("P1", PHONES, 3, 10.0)]),
    ], TRANSACTION)
    arrivals = spark.createDataFrame([restock(at(10, 2), "P1", 40), restock(at(10, 4), "P3", 7)], RESTOCK)
    changes = {r["product_id"]: r for r in stock_changes(stock_movements(sales, arrivals).toArrow()).to_pylist()}
    assert {p: (c["units_sold"], c["units_restocked"]) for p, c in changes.items()} == {
        "P1": (5, 40), "P2": (1, 0), "P3": (0, 7)}
    assert changes["P1"]["category"] == PHONES and changes["P3"]["category"] is None
    assert (changes["P1"]["first_event_time"], changes["P1"]["last_event_time"]) == (at(10, 1), at(10, 3))


def test_one_alert_per_move_to_a_worse_state():
    context = BatchContext("inventory_tracker", "inventory_tracker.stock", "c0ffee", 7)
    crossings = [
        ("P1", 8, "ok", "low", at(10), 12),
        ("P2", 3, "ok", "critical", at(10), 20),
        ("P3", 4, "low", "critical", at(10), 9),
        ("P4", 7, "low", "low", at(10), 8),  # still low: no new alert
        ("P5", 50, "critical", "ok", at(10), 2),  # restocked: no alert
        ("P6", -3, "ok", "critical", at(10), 11),  # sold 14 with 11 in stock: a data-quality alert instead
        ("P7", -5, "critical", "critical", at(10), -1),  # deeper below zero
        ("P8", -2, "critical", "critical", at(10), -6),  # a restock, still below zero: nothing new
    ]
    alerts = crossing_alerts(crossings, context, T)
    assert [(a.detail.get("product_id", a.detail.get("about")), a.kind, a.severity) for a in alerts] == [
        ("P1", "stock.low", "warning"), ("P2", "stock.critical", "critical"), ("P3", "stock.critical", "critical"),
        ("P6", "data_quality.oversold", "warning"), ("P7", "data_quality.oversold", "warning")]
    assert alerts[0].alert_id == "stock:P1:low:c0ffee:7"
    assert alerts[0].subject == "Low stock: P1 has 8 left (below 10)"
    assert [a.detail["facts"]["Units oversold"] for a in alerts[3:]] == [3, 4]


def run_sessions(spark, tmp_path, views, carts, sales, build):
    return run_stream(
        spark, tmp_path,
        {"views": (VIEW, views), "carts": (CART, carts), "sales": (TRANSACTION, sales)},
        lambda views, carts, sales: build(counted_activity(activity(views, carts, sales), "1 minute")),
        output_mode="append",
    )


def test_sessions_split_on_thirty_minutes_without_activity(spark, tmp_path):
    views = [[view(at(10, 0), product="P1"), view(at(10, 10), product="P2", category=BOOKS),
              view(at(11, 0), user="U1")]]  # 50 minutes later: a new session
    carts = [[cart(at(10, 12), "add", product="P2", category=BOOKS, price=5.0),
              cart(at(10, 13), "checkout", quantity=1, cart_value=5.0)]]
    sales = [[transaction(at(10, 14), lines=[("P2", BOOKS, 1, 5.0)])]]
    # the platform's clock moves the watermark past both sessions' ends: no other shopper needed
    closing = [[clock_tick(at(13))]]
    result = run_sessions(spark, tmp_path, views + closing, carts, sales,
                          lambda rows: sessions(rows, T.session_timeout_minutes))
    assert {r["user_id"] for r in result.rows} == {"U1"}  # the tick is no shopper
    found = sorted((r for r in result.rows if r["user_id"] == "U1"), key=lambda r: r["session_start"])
    assert len(found) == 2
    first = found[0]
    assert (first["views"], first["cart_adds"], first["checkouts"], first["purchases"]) == (2, 1, 1, 1)
    assert first["duration_seconds"] == 14 * 60
    assert first["purchase_value"] == Decimal("5.00")
    assert first["categories_viewed"] == [BOOKS, PHONES] and first["categories_purchased"] == [BOOKS]
    assert first["categories_carted"] == [BOOKS] and first["session_ids"] == ["S-U1"]
    assert found[1]["events"] == 1 and found[1]["duration_seconds"] == 0


def test_cart_abandonment(spark, tmp_path):
    carts = [[
        cart(at(10, 0), "add", user="leaver", product="P1", quantity=2, price=30.0),
        cart(at(10, 2), "add", user="leaver", product="P2", quantity=1, price=5.0, category=BOOKS),
        cart(at(10, 3), "update", user="leaver", product="P1", quantity=1, price=30.0),
        cart(at(10, 0), "add", user="buyer", product="P1"),
        cart(at(10, 1), "checkout", user="buyer", quantity=1, cart_value=100.0),
        cart(at(10, 0), "add", user="emptied", product="P1"),
        cart(at(10, 1), "remove", user="emptied", product="P1"),
        cart(at(10, 0), "add", user="again", product="P1"),
        cart(at(10, 5), "add", user="again", product="P2", price=7.0, category=BOOKS),
        cart(at(10, 1), "add", user="failed", product="P1"),
        cart(at(10, 2), "checkout", user="failed", quantity=1, cart_value=100.0),  # no transaction followed
    ]]
    sales = [[
        transaction(at(10, 1, 5), user="buyer"),
        transaction(at(10, 2), user="again"),
    ]]
    result = run_sessions(spark, tmp_path, [[]], carts + [[clock_tick(at(12))]], sales,
                          lambda rows: cart_abandonments(rows, T.cart_abandonment_minutes))
    found = {r["user_id"]: r for r in result.rows}
    assert set(found) == {"leaver", "again", "failed"}
    leaver = found["leaver"]
    assert (leaver["items"], leaver["cart_value"]) == (2, Decimal("35.00"))
    assert leaver["cart_started_at"] == at(10, 0).replace(tzinfo=None)
    assert leaver["abandoned_at"] == at(10, 18).replace(tzinfo=None)
    assert leaver["categories"] == [BOOKS, PHONES]
    again = found["again"]  # what was added after the purchase
    assert (again["cart_started_at"], again["items"], again["cart_value"]) == (at(10, 5).replace(tzinfo=None), 1, Decimal("7.00"))
    assert found["failed"]["abandoned_at"] == at(10, 17).replace(tzinfo=None)  # the checkout was the last activity


def test_a_business_id_delivered_again_counts_once_in_sessions_and_abandonments(spark, tmp_path):
    """The same purchase, view and cart event delivered twice in one batch and again in the next."""
    buy = transaction(at(10, 5), user="twice", lines=[("P1", PHONES, 1, 50.0)], tx_id="T-dup")
    look = view(at(10, 0), user="twice")
    add = cart(at(10, 1), "add", user="twice", product="P1", price=50.0)
    left = cart(at(10, 20), "add", user="twice", product="P2", price=7.0, category=BOOKS)
    result = run_sessions(spark, tmp_path, [[look, look], [look], [clock_tick(at(12))]],
                          [[add, add, left, left], [add, left]], [[buy, buy], [buy]],
                          lambda rows: sessions(rows, T.session_timeout_minutes))
    (session,) = result.rows
    assert (session["views"], session["cart_adds"], session["purchases"], session["purchase_value"]) == (
        1, 2, 1, Decimal("50.00"))

    abandoned = run_sessions(spark, tmp_path / "carts", [[]], [[add, add, left, left], [add, left], [clock_tick(at(12))]],
                             [[buy, buy], [buy]], lambda rows: cart_abandonments(rows, T.cart_abandonment_minutes))
    (cart_left,) = abandoned.rows
    assert (cart_left["items"], cart_left["cart_value"]) == (1, Decimal("7.00"))


def test_one_spike_alert_per_hour_over_the_threshold():
    alerts = spike_alerts([(at(10), 21, Decimal("1234.50"))], T)
    assert [a.alert_id for a in alerts] == [f"abandonment_spike:{at(10).isoformat()}"]
    assert alerts[0].detail["abandoned_carts_so_far"] == 21
