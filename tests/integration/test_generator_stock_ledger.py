"""Consecutive generator runs on a real PostgreSQL and broker sell only the stock that exists."""

import numpy as np
import orjson
import pytest

from globalmart import db
from globalmart.generator import service
from globalmart.generator.catalog import get_catalog
from globalmart.generator.publisher import GeneratorError
from globalmart.generator.stock_ledger import StockLedger
from globalmart.generator.traffic import TrafficConfig
from tests.kafka_helpers import read_all


def ledger_stock(settings, index) -> np.ndarray:
    stock = np.full(len(index), -1, dtype=np.int64)
    with db.connect(settings) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT product_id, stock FROM generator_stock")
        for product_id, units in cursor.fetchall():
            stock[index[product_id]] = units
    return stock


def net_moves(settings, index, tag) -> np.ndarray:
    """Units restocked minus units sold per product, by the run with this tag, as the topics hold them."""
    net = np.zeros(len(index), dtype=np.int64)
    for message in read_all(settings, "transactions"):
        event = orjson.loads(message.value())
        if event["transaction_id"].startswith(f"T-{tag}-"):
            for item in event["items"]:
                net[index[item["product_id"]]] -= item["quantity"]
    for message in read_all(settings, "inventory"):
        event = orjson.loads(message.value())
        if event["event_id"].startswith(f"E-{tag}-"):
            net[index[event["product_id"]]] += event["quantity"]
    return net


def test_a_run_starts_where_the_last_one_ended_and_nothing_goes_below_zero(stream_env):
    settings = stream_env
    catalog = get_catalog(settings.catalog, settings.generator)
    index = {product_id: i for i, product_id in enumerate(catalog.products.ids)}
    initial = catalog.products.initial_stock.astype(np.int64)

    # a realtime run, then a backfill; the tracker has counted neither (its table stays empty)
    first = service.generate(settings, TrafficConfig(mode="realtime", rate=2000, seed=41), minutes=0.15, quiet=True)
    assert first.ok and first.sent["transactions"] > 0
    assert first.stock_ledger["opening_stock_from"] == {"ledger": 0, "tracker": 0, "catalog": len(index)}
    after_first = ledger_stock(settings, index)
    assert np.array_equal(after_first, initial + net_moves(settings, index, first.tag))

    config = TrafficConfig(mode="backfill", days=1, seed=42, daily_transactions=20_000)  # yesterday
    second = service.generate(settings, config, quiet=True)
    assert second.ok and second.sent["transactions"] > 0
    assert second.stock_ledger["opening_stock_from"] == {"ledger": len(index), "tracker": 0, "catalog": 0}
    after_second = ledger_stock(settings, index)
    assert np.array_equal(after_second, after_first + net_moves(settings, index, second.tag))
    assert after_second.min() >= 0


def test_the_tracker_lowers_the_opening_stock_and_one_run_holds_the_ledger(stream_env):
    settings = stream_env
    service.load_catalog(settings)
    catalog = get_catalog(settings.catalog, settings.generator)
    initial = catalog.products.initial_stock
    with db.connect(settings) as connection, connection.cursor() as cursor:
        # the tracker oversold P000001 before this fix, and counted sales of P000002 the generator did not make
        cursor.execute(
            "INSERT INTO inventory_stock (product_id, initial_stock, stock, state, in_catalog) "
            "VALUES ('P000001', %s, -69, 'critical', true), ('P000002', %s, 1, 'critical', true), "
            "('junk-id', 0, 5, 'ok', false)",
            (int(initial[0]), int(initial[1])),
        )
    with StockLedger(settings, catalog) as ledger:
        opening, sources = ledger.opening()
        assert opening[:3].tolist() == [0, min(1, int(initial[1])), int(initial[2])]
        assert sources == {"ledger": 0, "tracker": 2, "catalog": len(initial) - 2}
        with pytest.raises(GeneratorError, match="another generator run"):
            StockLedger(settings, catalog)
    with StockLedger(settings, catalog):  # released when the run's connection closes
        pass
