"""Small hand-made events for the streaming transforms' tests (times are UTC on one day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyspark.sql.types import BooleanType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from globalmart.events import CartEvent, InventoryEvent, ProductView, Transaction
from globalmart.streaming.contracts import spark_schema

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: float = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute, seconds=second)


def _with_kafka(model) -> StructType:
    return StructType(spark_schema(model).fields + [StructField("kafka_timestamp", TimestampType()),
                                                    StructField("kafka_topic", StringType()),
                                                    StructField("kafka_partition", IntegerType()),
                                                    StructField("kafka_offset", LongType()),
                                                    StructField("tick", BooleanType())])


TRANSACTION = _with_kafka(Transaction)
VIEW = _with_kafka(ProductView)
CART = _with_kafka(CartEvent)
RESTOCK = _with_kafka(InventoryEvent)

_serial = iter(range(1, 10**9))


def transaction(time, user="U1", lines=(("P1", "Electronics > Phones", 1, 100.0),), country="USA", tx_id=None) -> dict:
    items = [{"product_id": p, "category": c, "quantity": q, "unit_price": price} for p, c, q, price in lines]
    return {
        "schema_version": 1, "event_time": time, "transaction_id": tx_id or f"T{next(_serial)}", "user_id": user,
        "session_id": f"S-{user}", "country": country, "payment_method": "paypal", "items": items,
        "total_amount": round(sum(q * price for _, _, q, price in lines), 2), "kafka_timestamp": time, "tick": False, "kafka_topic": "fixture", "kafka_partition": 0, "kafka_offset": next(_serial),
    }


def view(time, user="U1", product="P1", category="Electronics > Phones", country="USA") -> dict:
    return {
        "schema_version": 1, "event_time": time, "event_id": f"E{next(_serial)}", "user_id": user,
        "session_id": f"S-{user}", "country": country, "product_id": product, "category": category,
        "action": "view", "duration_seconds": 30, "search_query": None, "kafka_timestamp": time, "tick": False, "kafka_topic": "fixture", "kafka_partition": 0, "kafka_offset": next(_serial),
    }


def cart(time, action, user="U1", product="P1", quantity=1, price=100.0, category="Electronics > Phones",
         country="USA", cart_value=None) -> dict:
    checkout = action == "checkout"
    return {
        "schema_version": 1, "event_time": time, "event_id": f"E{next(_serial)}", "user_id": user,
        "session_id": f"S-{user}", "country": country, "action": action,
        "product_id": None if checkout else product, "category": None if checkout else category,
        "unit_price": None if checkout else price, "quantity": quantity,
        "cart_value": cart_value if checkout else None, "kafka_timestamp": time, "tick": False, "kafka_topic": "fixture", "kafka_partition": 0, "kafka_offset": next(_serial),
    }


def restock(time, product, quantity) -> dict:
    return {"schema_version": 1, "event_time": time, "event_id": f"E{next(_serial)}", "product_id": product,
            "action": "restock", "quantity": quantity, "kafka_timestamp": time, "tick": False, "kafka_topic": "fixture", "kafka_partition": 0, "kafka_offset": next(_serial)}


def clock_tick(time) -> dict:
    """A ClockTick as ``valid_events(..., with_ticks=True)`` parses it: only its time is set."""
    return {"event_time": time, "tick": True, "kafka_timestamp": time}
