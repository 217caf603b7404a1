"""The generator's stock: the opening-stock rule, what a run leaves behind, never below zero."""

from collections import Counter
from datetime import date

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from globalmart.generator.catalog import get_catalog
from globalmart.generator.simulator import pick_in_stock
from globalmart.generator.stock_rules import (
    MISSING,
    opening_sources,
    opening_stock,
    published_stock,
    restocked_units,
)
from globalmart.generator.traffic import TrafficConfig, TrafficStream

counts = hnp.arrays(np.int64, 12, elements=st.one_of(st.just(MISSING), st.integers(-100, 1000)))


@given(initial=hnp.arrays(np.int64, 12, elements=st.integers(0, 1000)), own=counts, tracker=counts)
def test_opening_stock_never_exceeds_a_source_and_is_never_negative(initial, own, tracker):
    stock = opening_stock(initial, own, tracker)
    assert (stock >= 0).all()
    assert (stock <= np.maximum(own, 0)).all() and (stock <= np.maximum(tracker, 0)).all()
    neither = (own == MISSING) & (tracker == MISSING)
    assert np.array_equal(stock[neither], initial[neither])
    assert sum(opening_sources(own, tracker).values()) == len(initial)


def test_opening_stock_takes_the_lower_source_per_product():
    initial = np.array([50, 50, 50, 50, 50])
    own = np.array([10, 30, MISSING, MISSING, 5])  # the last run's end stock
    tracker = np.array([40, 20, 60, MISSING, -69])  # behind on product 0, ahead on 1, oversold on 4
    assert opening_stock(initial, own, tracker).tolist() == [10, 20, 60, 50, 0]
    assert opening_sources(own, tracker) == {"ledger": 1, "tracker": 3, "catalog": 1}


def test_unpublished_restocks_are_not_in_the_saved_stock():
    messages = [
        ("inventory", "P000002", orjson.dumps({"product_id": "P000002", "quantity": 30})),
        ("transactions", "U00000001", b"{}"),
        ("inventory", "P000002", orjson.dumps({"product_id": "P000002", "quantity": 5})),
        ("inventory", "P000001", orjson.dumps({"product_id": "P000001", "quantity": 50})),
    ]
    units = restocked_units(messages)
    assert units == Counter({"P000002": 35, "P000001": 50})
    index = {"P000001": 0, "P000002": 1, "P000003": 2}
    # product 0 sold 20 of its unpublished 50: the saved stock stops at zero
    assert published_stock(np.array([30, 40, 7]), units, index).tolist() == [0, 5, 7]


def test_pick_in_stock_never_picks_a_product_without_the_units():
    stock = np.array([0, 3, 12, 1])
    assert pick_in_stock(np.array([0, 3, 1, 2]), stock, 2) == 1  # the first candidate that has them
    assert pick_in_stock(np.array([0, 3]), stock, 5) == 2  # the pool is out: the best-stocked of all
    assert pick_in_stock(np.array([2]), stock, 13) == -1  # nothing in the shop has 13


def small(settings):
    catalog = settings.catalog.model_copy(update={"users": 50_000, "products": 5_000})
    return settings.model_copy(update={"catalog": catalog})


def stock_moves(messages, index):
    """(product index, units) of every sale and restock, in the order the messages are sent."""
    moves = []
    for topic, key, value in messages:
        if topic == "transactions":
            moves.extend((index[i["product_id"]], -i["quantity"]) for i in orjson.loads(value)["items"])
        elif topic == "inventory":
            moves.append((index[key], orjson.loads(value)["quantity"]))
    return moves


def assert_sent_stock_matches(traffic, opening, sent, index):
    """The tracker's count of the sent events never goes below zero, and ends where the run's
    own stock ends: the run's accounting is exactly what it published."""
    stock = opening.astype(np.int64).copy()
    lowest = stock.copy()
    for product, units in stock_moves(sent, index):
        stock[product] += units
        lowest[product] = min(lowest[product], stock[product])
    assert lowest.min() >= 0
    assert np.array_equal(traffic.simulator.stock, stock)


@pytest.mark.parametrize("shelves", ["empty", "scarce"])
def test_a_backfill_never_sells_what_it_does_not_have(settings, shelves):
    """Anomalies ask for many units (up to 4× the unusual quantity): on nearly empty shelves
    they are skipped, never sold from nothing. Only reorders restock here, and they take hours."""
    s = small(settings)
    slow_restocks = {"restock_lead_minutes": (360, 600), "random_restocks_per_hour": 0.0}
    s = s.model_copy(update={"generator": s.generator.model_copy(update=slow_restocks)})
    catalog = get_catalog(s.catalog, s.generator)
    index = {p: i for i, p in enumerate(catalog.products.ids)}
    rng = np.random.default_rng(1)
    opening = np.zeros(len(index), dtype=np.int64) if shelves == "empty" else rng.integers(0, 4, size=len(index))
    config = TrafficConfig(mode="backfill", days=1, end_date=date(2026, 11, 21), seed=9, anomaly_rate=0.3,
                           daily_transactions=5_000)
    traffic = TrafficStream(s, config, catalog, opening_stock=opening)
    sent = [m for batch in traffic for m in batch.events]
    assert_sent_stock_matches(traffic, opening, sent, index)
    counters = traffic.simulator.counters
    assert counters.sold_out_scenarios > 0 and counters.out_of_stock_lines > 0
    assert any(topic == "inventory" for topic, _, _ in sent)


def test_a_stopped_realtime_run_keeps_only_what_it_sent(settings):
    """Purchases still pending at the stop, and the warm-up's dropped ones, go back on the shelf;
    restocks that arrived while warming up are sent."""
    s = small(settings)
    catalog = get_catalog(s.catalog, s.generator)
    index = {p: i for i, p in enumerate(catalog.products.ids)}
    opening = np.random.default_rng(2).integers(0, 30, size=len(index))
    clock = [1_790_000_000_000]
    config = TrafficConfig(mode="realtime", rate=2000, seed=4, anomaly_rate=0.2)
    traffic = TrafficStream(s, config, catalog, wall_ms=lambda: clock[0], opening_stock=opening)
    sent = []
    for _ in range(100):  # 20 simulated seconds
        clock[0] += 200
        sent.extend(traffic.next_batch().events)
    traffic.stop()
    assert_sent_stock_matches(traffic, opening, sent, index)


def test_the_opening_stock_must_fit_the_catalog(settings):
    s = small(settings)
    catalog = get_catalog(s.catalog, s.generator)
    config = TrafficConfig(mode="backfill", end_date=date(2026, 11, 21), seed=1)
    for bad in (np.zeros(3, dtype=np.int64), np.full(len(catalog.products), -1)):
        with pytest.raises(ValueError, match="opening stock"):
            TrafficStream(s, config, catalog, opening_stock=bad)


def test_a_backfill_older_than_the_contract_accepts_is_refused_before_anything_is_sent(settings):
    from datetime import UTC, date, datetime

    from globalmart.generator.service import BackfillTooOld, check_backfill_fits_the_contract
    from globalmart.generator.traffic import TrafficConfig

    now = datetime(2026, 12, 1, 6, tzinfo=UTC)
    check_backfill_fits_the_contract(settings, TrafficConfig(mode="backfill", days=7, end_date=date(2026, 12, 1)), now)
    with pytest.raises(BackfillTooOld, match="contracts.max_event_age_hours"):
        check_backfill_fits_the_contract(settings, TrafficConfig(mode="backfill", days=9, end_date=date(2026, 12, 1)), now)
