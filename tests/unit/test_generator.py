"""The traffic generator on its own (no Kafka): determinism, behaviour, ground truth."""

from collections import Counter, defaultdict
from datetime import date, datetime

import numpy as np
import orjson
import pytest

from globalmart.events import TOPIC_CONTRACTS, validate_payload
from globalmart.generator.catalog import build_catalog, get_catalog
from globalmart.generator.traffic import TrafficConfig, TrafficStream

DAY = date(2026, 11, 21)


def small(settings, users=200_000, products=20_000):
    catalog = settings.catalog.model_copy(update={"users": users, "products": products})
    return settings.model_copy(update={"catalog": catalog})


def stream(settings, **config):
    config = {"mode": "backfill", "end_date": DAY, "seed": 5, **config}
    return TrafficStream(settings, TrafficConfig(**config), get_catalog(settings.catalog, settings.generator))


def first_messages(traffic, count):
    out = []
    while len(out) < count:
        batch = traffic.next_batch()
        out.extend(batch.events + batch.truths)
    return out[:count]


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def day(settings):
    """One simulated day at 30,000 transactions: parsed events by topic, the stream, rejects."""
    s = small(settings)
    traffic = stream(s, daily_transactions=30_000)
    events, rejects = defaultdict(list), []
    for batch in traffic:
        for topic, key, value in batch.events + batch.truths:
            # as if each event reached the broker when it happened
            received_at = datetime.fromisoformat(orjson.loads(value)["event_time"].replace("Z", "+00:00"))
            reason = validate_payload(TOPIC_CONTRACTS[topic], value, received_at)
            if reason:
                rejects.append((topic, reason))
            event = orjson.loads(value)
            if topic != "inventory":
                assert key == event["user_id"]
            events[topic].append(event)
    return events, traffic, rejects


def test_catalog_is_deterministic_and_spans_categories(settings):
    s = small(settings, users=50_000, products=5_000).catalog
    a, b = build_catalog(s), build_catalog(s)
    assert np.array_equal(a.products.price, b.products.price)
    assert np.array_equal(a.users.country, b.users.country)
    assert a.fingerprint == b.fingerprint
    other = build_catalog(s.model_copy(update={"seed": s.seed + 1}))
    assert not np.array_equal(a.products.price, other.products.price) and a.fingerprint != other.fingerprint
    table = a.products.to_arrow().to_pylist()
    assert len({row["category"] for row in table}) == 100
    for row, category in zip(table, a.products.category.tolist()):
        spec = a.products.categories[category]
        assert spec.min_price <= row["price"] <= spec.max_price
        assert 0 <= row["initial_stock"] <= 1000 and 1.0 <= row["rating"] <= 5.0
    users = a.users.to_arrow().slice(0, 3).to_pylist()
    assert [u["user_id"] for u in users] == ["U00000001", "U00000002", "U00000003"]
    assert all("@" in u["email"] and " " in u["name"] for u in users)


def test_same_seed_same_events(settings):
    s = small(settings, users=50_000, products=5_000)
    first = first_messages(stream(s, seed=7), 20_000)
    again = first_messages(stream(s, seed=7), 20_000)
    other = first_messages(stream(s, seed=8), 20_000)
    assert first == again
    assert first != other


def test_every_event_meets_its_contract(day):
    events, _, rejects = day
    assert rejects == []
    assert len(events["product_views"]) > 100_000


def test_event_mix_funnel_and_country_mix(day, settings):
    events, traffic, _ = day
    b = settings.generator
    mix = {t: len(events[t]) for t in ("product_views", "cart_events", "transactions")}
    total = sum(mix.values())
    # the requirement notes: about 60 % views, 30 % cart events, 10 % transactions
    assert 0.55 < mix["product_views"] / total < 0.68
    assert 0.25 < mix["cart_events"] / total < 0.35
    assert 0.05 < mix["transactions"] / total < 0.12

    viewed = {e["session_id"] for e in events["product_views"]}
    carted = {e["session_id"] for e in events["cart_events"] if e["action"] == "add"}
    bought = {e["session_id"] for e in events["transactions"]}
    checked_out = {e["session_id"] for e in events["cart_events"] if e["action"] == "checkout"}
    assert abs(len(carted & viewed) / len(viewed) - b.cart_rate) < 0.02
    assert abs(len(checked_out & carted) / len(carted) - b.checkout_rate) < 0.03
    # a few checkouts fail because everything in the cart sold out meanwhile
    assert 0.9 < len(bought & checked_out) / len(checked_out) <= 1.0

    sessions = {e["session_id"]: e["country"] for e in events["product_views"]}
    shares = Counter(sessions.values())
    for country, weight in zip(settings.catalog.countries, settings.catalog.country_weights):
        assert abs(shares[country] / len(sessions) - weight) < 0.02, (country, shares)


def test_diurnal_curve_shapes_the_day(day):
    events, _, _ = day
    hours = Counter(int(parse_time(e["event_time"]) // 3600 % 24) for e in events["product_views"])
    assert max(hours.values()) > 3 * min(hours[h] for h in range(24))
    times = [parse_time(e["event_time"]) for e in events["product_views"]]
    start = datetime(2026, 11, 20).timestamp()
    assert start <= min(times) and max(times) < start + 86_400 + 3_600  # sessions open at midnight finish


def test_anomaly_rate_and_ground_truth_match_the_rules(day, settings):
    events, _, _ = day
    t = settings.thresholds
    transactions = {e["transaction_id"]: e for e in events["transactions"]}
    truths = [g for g in events["ground_truth"] if g["kind"] != "cart_abandoned"]
    labelled = {tx for g in truths for tx in g["transaction_ids"]}
    assert labelled <= transactions.keys()
    assert abs(len(labelled) / len(transactions) - settings.generator.anomaly_rate) < 0.005
    assert {g["kind"] for g in truths} == set(settings.generator.anomaly_kinds)

    for g in truths:
        txs = [transactions[i] for i in g["transaction_ids"]]
        times = [parse_time(x["event_time"]) for x in txs]
        assert all(x["user_id"] == g["user_id"] for x in txs)
        if g["kind"] == "high_value":
            assert txs[0]["total_amount"] > t.high_value_transaction
        elif g["kind"] == "unusual_quantity":
            assert max(i["quantity"] for i in txs[0]["items"]) > t.unusual_quantity
        elif g["kind"] == "rapid_fire_count":
            assert len(txs) >= t.rapid_transactions_per_minute and max(times) - min(times) < 60
        else:
            assert sum(x["total_amount"] for x in txs) > t.rapid_spend_5min and max(times) - min(times) < 300

    # ordinary transactions break no rule: every detection would be a true anomaly
    by_user = defaultdict(list)
    for tx_id, x in transactions.items():
        if tx_id not in labelled:
            assert x["total_amount"] <= t.high_value_transaction
            assert max(i["quantity"] for i in x["items"]) <= t.unusual_quantity
            by_user[x["user_id"]].append(parse_time(x["event_time"]))
    for times in by_user.values():
        times.sort()
        for i in range(len(times) - t.rapid_transactions_per_minute + 1):
            assert times[i + t.rapid_transactions_per_minute - 1] - times[i] >= 60


def test_abandoned_carts_are_recorded(day, settings):
    events, traffic, _ = day
    abandoned = [g for g in events["ground_truth"] if g["kind"] == "cart_abandoned"]
    bought = {e["session_id"] for e in events["transactions"]}
    added = {e["session_id"] for e in events["cart_events"] if e["action"] == "add"}
    sessions = {g["session_id"] for g in abandoned}
    assert len(sessions) == len(abandoned)
    assert sessions <= added and not sessions & bought
    # every cart with an add and no purchase is either recorded as abandoned or still open
    assert added - bought - sessions == set()
    timeout = settings.thresholds.cart_abandonment_minutes * 60
    assert all(parse_time(g["event_time"]) - parse_time(g["first_event_time"]) >= timeout for g in abandoned)
    assert all(g["amount"] > 0 for g in abandoned)


def test_stock_never_negative_and_restocks_arrive(day):
    events, traffic, _ = day
    assert traffic.simulator.stock.min() >= 0
    assert len(events["inventory"]) > 0
    assert all(e["quantity"] >= 1 for e in events["inventory"])


def test_stopping_records_what_was_sent(settings):
    """A run cut short: carts whose adds were sent but were not paid count as abandoned."""
    s = small(settings, users=50_000, products=5_000)
    clock = [1_790_000_000_000]
    traffic = TrafficStream(
        s, TrafficConfig(mode="realtime", rate=2000, seed=3), get_catalog(s.catalog, s.generator),
        wall_ms=lambda: clock[0],
    )
    sent = []
    for _ in range(100):  # 20 simulated seconds
        clock[0] += 200
        sent.extend(traffic.next_batch().events)
    ending = traffic.stop()
    truths = [orjson.loads(v) for _, _, v in ending.truths]
    assert truths and all(g["kind"] in ("cart_abandoned", "rapid_fire_count", "rapid_fire_amount") for g in truths)
    sent_events = [orjson.loads(v) for t, _, v in sent if t == "cart_events"]
    added = {e["session_id"] for e in sent_events if e["action"] == "add"}
    paid = {orjson.loads(v)["session_id"] for t, _, v in sent if t == "transactions"}
    for g in truths:
        if g["kind"] == "cart_abandoned":
            assert g["session_id"] in added and g["session_id"] not in paid
    with pytest.raises(StopIteration):
        traffic.next_batch()
